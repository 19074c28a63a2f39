"""The istio router against the emulator: one VirtualService HTTP route's destination
weights, through v1 and v1beta1."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from retrain.errors import RouterError
from retrain.rollout.base import Split
from retrain.rollout.istio import GROUP, Destination, IstioRouter, IstioSettings
from tests.harness.k8s.cluster import api_client
from tests.harness.k8s.server import Emulator, Fault
from tests.unit.retrain.rollout.custom_support import (
    CANARY,
    HOST,
    NAME,
    NAMESPACE,
    STABLE,
    VIRTUAL_SERVICE,
    edit,
    emulator,
    seed,
    stored,
    writes,
)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with emulator() as emu:
        seed(emu, f"{GROUP}/v1", "VirtualService", "virtualservices", VIRTUAL_SERVICE)
        yield emu


def router(
    emu: Emulator, route: int | str = "primary", version: str = "v1", name: str = NAME
) -> IstioRouter:
    settings = IstioSettings(
        NAMESPACE,
        name,
        stable=Destination(HOST, "stable"),
        canary=Destination(HOST, "canary"),
        route=route,
        version=version,
    )
    return IstioRouter(api_client(emu.url), settings)


def expected(stable: int, canary: int) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(VIRTUAL_SERVICE["spec"])
    route = spec["http"][1]["route"]
    route[0]["weight"], route[1]["weight"] = stable, canary
    return spec


@pytest.mark.parametrize(("route", "version"), [("primary", "v1"), (1, "v1beta1")])
def test_each_step_sets_exactly_the_two_weights(emu: Emulator, route: Any, version: str) -> None:
    r = router(emu, route, version)
    for percent in (5, 25, 50, 100):
        assert r.set_weights(STABLE, CANARY, percent) == Split(percent)
        assert stored(emu, GROUP, "virtualservices")["spec"] == expected(100 - percent, percent)
        assert r.get_weights() == Split(percent)


def test_a_destination_without_a_weight_among_several_reads_as_zero(emu: Emulator) -> None:
    assert router(emu).get_weights() == Split(0)


def test_repeating_a_call_writes_nothing(emu: Emulator) -> None:
    r = router(emu)
    for _ in range(2):
        r.set_weights(STABLE, CANARY, 5)
    for _ in range(2):
        assert r.promote(CANARY).done
    assert writes(emu, "virtualservices") == 2


def test_promote_and_rollback_end_states(emu: Emulator) -> None:
    r = router(emu)
    r.set_weights(STABLE, CANARY, 50)
    assert r.rollback(STABLE).done
    assert stored(emu, GROUP, "virtualservices")["spec"] == expected(100, 0)
    progress = r.promote(CANARY)
    assert progress.done and "subset canary serves all traffic" in progress.note
    assert stored(emu, GROUP, "virtualservices")["spec"] == expected(0, 100)
    assert r.get_weights() == Split(100)


def test_another_weighted_destination_is_fatal(emu: Emulator) -> None:
    """Istio wants the route's weights to sum to 100: a third one with weight would break it."""
    edit(
        emu, GROUP, "virtualservices", lambda o: o["spec"]["http"][1]["route"][2].update(weight=10)
    )
    with pytest.raises(RouterError) as caught:
        router(emu).set_weights(STABLE, CANARY, 25)
    assert not caught.value.retriable and "must sum to 100" in str(caught.value)
    assert writes(emu, "virtualservices") == 0


def test_destinations_match_by_host_and_subset(emu: Emulator) -> None:
    settings = IstioSettings(
        NAMESPACE, NAME, stable=Destination(HOST), canary=Destination(HOST, "canary")
    )
    with pytest.raises(RouterError) as caught:
        IstioRouter(api_client(emu.url), settings).set_weights(STABLE, CANARY, 25)
    assert not caught.value.retriable
    assert f"no destination {HOST} in route" in str(caught.value)


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(RouterError, match="expected v1 or v1beta1"):
        IstioRouter(api_client("http://127.0.0.1:1"), IstioSettings(
            NAMESPACE, NAME, Destination(HOST), Destination(HOST, "c"), version="v1alpha3"
        ))  # fmt: skip


def test_a_missing_virtual_service_is_fatal_and_named(emu: Emulator) -> None:
    with pytest.raises(RouterError) as caught:
        router(emu, name="payments").get_weights()
    assert not caught.value.retriable and f"{NAMESPACE}/payments" in str(caught.value)


def test_a_missing_route_name_is_fatal(emu: Emulator) -> None:
    with pytest.raises(RouterError, match=r"spec\.http has no http route 'shadow'") as caught:
        router(emu, "shadow").set_weights(STABLE, CANARY, 5)
    assert not caught.value.retriable


def test_a_server_error_on_the_write_is_retriable(emu: Emulator) -> None:
    emu.inject(Fault("patch", "virtualservices", 503))
    with pytest.raises(RouterError) as caught:
        router(emu).set_weights(STABLE, CANARY, 5)
    assert caught.value.retriable
    assert stored(emu, GROUP, "virtualservices")["spec"] == VIRTUAL_SERVICE["spec"]
    assert router(emu).set_weights(STABLE, CANARY, 5) == Split(5)


def test_forbidden_is_fatal(emu: Emulator) -> None:
    emu.role = {"rules": [{"apiGroups": [GROUP], "resources": ["virtualservices"],
                           "verbs": ["get"]}]}  # fmt: skip
    with pytest.raises(RouterError) as caught:
        router(emu).set_weights(STABLE, CANARY, 5)
    assert not caught.value.retriable and "403" in str(caught.value)
