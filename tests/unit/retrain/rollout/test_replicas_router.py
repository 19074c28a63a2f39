"""The ``replicas`` router against the API emulator: replica counts and the model on
the Pod templates as documented, promotion that waits for availability, rollback,
idempotent repeats, and API errors classed retriable or fatal."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrain.errors import RouterError
from retrain.rollout.base import Progress, Split
from retrain.rollout.replicas import canary_replicas
from tests.harness.k8s.cluster import NAMESPACE
from tests.harness.k8s.server import Fault
from tests.unit.retrain.rollout.replicas_support import (
    CANARY,
    STABLE,
    V1,
    V2,
    replicas_cluster,
    served,
)


@pytest.mark.parametrize(
    ("total", "percent", "expected"),
    [(4, 0, 0), (4, 5, 1), (4, 25, 1), (4, 50, 2), (4, 62, 2), (4, 63, 3), (4, 100, 3),
     (10, 5, 1), (10, 15, 2), (10, 100, 9), (2, 100, 1), (5, 50, 3)],
)  # fmt: skip
def test_canary_replicas_round_halves_up_and_leave_one_stable(
    total: int, percent: int, expected: int
) -> None:
    assert canary_replicas(total, percent) == expected


@pytest.mark.parametrize(
    ("percent", "canary", "stable", "split"),
    [(5, 1, 3, 25), (25, 1, 3, 25), (50, 2, 2, 50), (100, 3, 1, 75)],
)
def test_set_weights_applies_replicas_and_the_model_on_the_templates(
    tmp_path: Path, percent: int, canary: int, stable: int, split: int
) -> None:
    with replicas_cluster(tmp_path) as (emulator, router, _):
        assert router.set_weights(V1, V2, percent) == Split(split, "v1", "v2")
        assert served(emulator, CANARY) == (canary, V2.uri, "v2", V2.sha256)
        assert served(emulator, STABLE) == (stable, V1.uri, "v1", V1.sha256)
        assert router.get_weights() == Split(split, "v1", "v2")
        template = emulator.store.get("deployments", NAMESPACE, CANARY)["spec"]["template"]
        proxy, server = template["spec"]["containers"]  # merged by name, not replaced
        assert (proxy["image"], server["image"]) == ("proxy:1", "registry.example/fraud-server:3")
        assert [(e["name"], e["value"]) for e in server["env"]] == [
            ("LOG_LEVEL", "info"),
            ("MODEL_URI", V2.uri),
        ]


def test_a_repeated_call_patches_nothing(tmp_path: Path) -> None:
    with replicas_cluster(tmp_path) as (emulator, router, _):
        router.set_weights(V1, V2, 25)
        patches = emulator.count("patch", "deployments")
        assert router.set_weights(V1, V2, 25) == Split(25, "v1", "v2")
        assert emulator.count("patch", "deployments") == patches
        # The patch's answer predates the controller: not done until it is read again.
        assert not router.promote(V2).done
        assert router.promote(V2) == Progress(True)
        patches = emulator.count("patch", "deployments")
        assert router.promote(V2) == Progress(True)
        assert router.rollback(V2) == Progress(True)  # V2 is the stable version now
        assert router.get_weights() == Split(0, "v2", None)
        assert emulator.count("patch", "deployments") == patches


def test_promote_waits_for_the_stable_rollout_before_retiring_the_canary(
    tmp_path: Path,
) -> None:
    with replicas_cluster(tmp_path) as (emulator, router, _):
        router.set_weights(V1, V2, 50)
        emulator.deployments.hold(NAMESPACE, STABLE)
        for _ in range(3):
            progress = router.promote(V2)
            assert not progress.done
            assert served(emulator, CANARY)[0] == 2  # the canary keeps serving meanwhile
            assert served(emulator, STABLE) == (4, V2.uri, "v2", V2.sha256)
        assert progress.note == "stable Deployment fraud: 0 of 4 updated replicas available"
        emulator.deployments.release(NAMESPACE, STABLE)
        assert router.promote(V2) == Progress(True)
        assert served(emulator, CANARY)[0] == 0
        assert router.get_weights() == Split(0, "v2", None)


def test_rollback_retires_the_canary_first_and_waits_for_the_stable(tmp_path: Path) -> None:
    with replicas_cluster(tmp_path) as (emulator, router, _):
        router.set_weights(V1, V2, 100)
        emulator.deployments.hold(NAMESPACE, STABLE)
        assert not router.rollback(V1).done  # the patch's answer: not observed yet
        assert router.rollback(V1) == Progress(
            False, "stable Deployment fraud: 0 of 4 updated replicas available"
        )
        assert served(emulator, CANARY)[0] == 0
        assert served(emulator, STABLE) == (4, V1.uri, "v1", V1.sha256)
        emulator.deployments.release(NAMESPACE, STABLE)
        assert router.rollback(V1) == Progress(True)
        assert router.get_weights() == Split(0, "v1", None)


def test_a_missing_deployment_is_fatal_and_named(tmp_path: Path) -> None:
    with replicas_cluster(tmp_path) as (emulator, router, _):
        emulator.store.delete("deployments", NAMESPACE, CANARY)
        with pytest.raises(RouterError) as info:
            router.set_weights(V1, V2, 5)
        assert not info.value.retriable
        assert str(info.value) == (
            f"rollout.replicas: get Deployment {NAMESPACE}/{CANARY}: 404 deployments "
            f'"{CANARY}" not found'
        )


@pytest.mark.parametrize("verb", ["get", "patch"])
@pytest.mark.parametrize(("status", "retriable"), [(503, True), (429, True), (422, False)])
def test_api_errors_are_classed_by_status(
    tmp_path: Path, verb: str, status: int, retriable: bool
) -> None:
    with replicas_cluster(tmp_path) as (emulator, router, _):
        emulator.inject(Fault(verb, "deployments", status))
        with pytest.raises(RouterError, match=f"{verb} Deployment .*: {status} injected") as info:
            router.set_weights(V1, V2, 50)
        assert info.value.retriable is retriable
        assert router.set_weights(V1, V2, 50) == Split(50, "v1", "v2")  # the next tick
        assert served(emulator, CANARY)[0] == 2


def test_a_dropped_connection_is_retriable(tmp_path: Path) -> None:
    with replicas_cluster(tmp_path) as (emulator, router, _):
        emulator.inject(Fault("get", "deployments", 0, count=10))  # more than urllib3 retries
        with pytest.raises(RouterError) as info:
            router.get_weights()
        assert info.value.retriable and "get Deployment" in str(info.value)


def test_a_missing_container_names_the_key(tmp_path: Path) -> None:
    with (
        replicas_cluster(tmp_path, container_name="model") as (_, router, _apps),
        pytest.raises(RouterError) as info,
    ):
        router.set_weights(V1, V2, 5)
    assert not info.value.retriable
    assert str(info.value) == (
        "rollout.replicas.container: Deployment fraud-canary has no container 'model' "
        "(it has istio-proxy, server)"
    )
