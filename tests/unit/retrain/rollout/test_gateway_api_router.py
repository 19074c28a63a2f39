"""The gateway-api router against the emulator: one HTTPRoute rule's backendRefs weights."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from retrain.errors import RouterError
from retrain.rollout.base import Progress, Split
from retrain.rollout.custom_objects import CustomObject, ObjectRef
from retrain.rollout.gateway_api import GROUP, GatewayApiRouter, GatewayApiSettings
from tests.harness.k8s.cluster import api_client
from tests.harness.k8s.server import Emulator, Fault
from tests.unit.retrain.rollout.custom_support import (
    CANARY,
    NAME,
    NAMESPACE,
    ROUTE,
    STABLE,
    edit,
    emulator,
    seed,
    stored,
    writes,
)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with emulator() as emu:
        seed(emu, f"{GROUP}/v1", "HTTPRoute", "httproutes", ROUTE)
        yield emu


def router(emu: Emulator, rule: int | str = "predict", route: str = NAME) -> GatewayApiRouter:
    settings = GatewayApiSettings(NAMESPACE, route, "fraud-stable", "fraud-canary", rule=rule)
    return GatewayApiRouter(api_client(emu.url), settings)


def expected(stable: int, canary: int) -> dict[str, Any]:
    """The route as seeded, with only the two weights of the predict rule changed."""
    spec: dict[str, Any] = copy.deepcopy(ROUTE["spec"])
    refs = spec["rules"][1]["backendRefs"]
    refs[0]["weight"], refs[1]["weight"] = stable, canary
    return spec


@pytest.mark.parametrize("rule", ["predict", 1])
def test_each_step_sets_exactly_the_two_weights(emu: Emulator, rule: int | str) -> None:
    r = router(emu, rule)
    for percent in (5, 25, 50, 100):
        assert r.set_weights(STABLE, CANARY, percent) == Split(percent)
        obj = stored(emu, GROUP, "httproutes")
        assert obj["spec"] == expected(100 - percent, percent)
        assert obj["metadata"]["labels"] == {"team": "fraud"}
        assert r.get_weights() == Split(percent)


def test_weights_are_relative_when_read(emu: Emulator) -> None:
    def weights(obj: dict[str, Any]) -> None:
        refs = obj["spec"]["rules"][1]["backendRefs"]
        refs[0]["weight"], refs[1]["weight"] = 1, 3

    edit(emu, GROUP, "httproutes", weights)
    assert router(emu).get_weights() == Split(75)


def test_a_missing_weight_counts_as_one(emu: Emulator) -> None:
    def unweighted(obj: dict[str, Any]) -> None:
        for ref in obj["spec"]["rules"][1]["backendRefs"]:
            ref.pop("weight", None)

    edit(emu, GROUP, "httproutes", unweighted)
    assert router(emu).get_weights() == Split(50)


def test_repeating_a_call_writes_nothing(emu: Emulator) -> None:
    r = router(emu)
    r.set_weights(STABLE, CANARY, 25)
    r.set_weights(STABLE, CANARY, 25)
    assert writes(emu, "httproutes") == 1
    r.rollback(STABLE)
    r.rollback(STABLE)
    assert writes(emu, "httproutes") == 2


def test_promote_routes_everything_to_the_canary_backend(emu: Emulator) -> None:
    r = router(emu)
    r.set_weights(STABLE, CANARY, 50)
    progress = r.promote(CANARY)
    assert progress.done and "fraud-canary" in progress.note
    assert stored(emu, GROUP, "httproutes")["spec"] == expected(0, 100)
    assert r.promote(CANARY).done
    assert writes(emu, "httproutes") == 2
    assert r.get_weights() == Split(100)


def test_rollback_routes_everything_to_the_stable_backend(emu: Emulator) -> None:
    r = router(emu)
    r.set_weights(STABLE, CANARY, 50)
    assert r.rollback(STABLE) == Progress(
        True, f"backend Service fraud-stable serves all traffic of HTTPRoute {NAMESPACE}/{NAME}"
    )
    assert stored(emu, GROUP, "httproutes")["spec"] == expected(100, 0)
    assert r.get_weights() == Split(0)


def test_a_missing_route_is_fatal_and_named(emu: Emulator) -> None:
    with pytest.raises(RouterError) as caught:
        router(emu, route="payments").set_weights(STABLE, CANARY, 5)
    assert not caught.value.retriable
    assert f"{NAMESPACE}/payments" in str(caught.value) and "404" in str(caught.value)


@pytest.mark.parametrize("rule", ["score", 2])
def test_a_missing_rule_is_fatal_and_named(emu: Emulator, rule: int | str) -> None:
    with pytest.raises(RouterError) as caught:
        router(emu, rule).set_weights(STABLE, CANARY, 5)
    assert not caught.value.retriable
    assert f"spec.rules has no rule {rule!r}" in str(caught.value)
    assert writes(emu, "httproutes") == 0


def test_a_rule_without_the_canary_backend_is_fatal(emu: Emulator) -> None:
    with pytest.raises(RouterError) as caught:
        router(emu, "health").set_weights(STABLE, CANARY, 5)
    assert not caught.value.retriable
    assert "no backend Service fraud-canary" in str(caught.value)
    assert stored(emu, GROUP, "httproutes")["spec"] == ROUTE["spec"]


def test_a_server_error_is_retriable(emu: Emulator) -> None:
    emu.inject(Fault("get", "httproutes", 503))
    with pytest.raises(RouterError) as caught:
        router(emu).set_weights(STABLE, CANARY, 5)
    assert caught.value.retriable and "503" in str(caught.value)
    assert router(emu).set_weights(STABLE, CANARY, 5) == Split(5)


def test_a_patch_of_a_stale_read_is_refused_and_retriable(emu: Emulator) -> None:
    """Another writer changed the route between the read and the patch: the patch carries
    the resourceVersion read, the server refuses it, nothing of the stale copy lands."""
    r = router(emu)
    ref = ObjectRef(GROUP, "v1", "httproutes", "HTTPRoute", NAMESPACE, NAME)
    obj = CustomObject(api_client(emu.url), ref, request_timeout=5.0)
    read = obj.get()
    edit(emu, GROUP, "httproutes", lambda o: o["spec"].update(hostnames=["new.example"]))
    with pytest.raises(RouterError) as caught:
        obj.patch(read, {"spec": {"rules": []}})
    assert caught.value.retriable and "409" in str(caught.value)
    spec = stored(emu, GROUP, "httproutes")["spec"]
    assert spec["hostnames"] == ["new.example"] and spec["rules"] == ROUTE["spec"]["rules"]
    assert r.set_weights(STABLE, CANARY, 5) == Split(5)  # the next tick reads again
