"""deploy/kubernetes/overlays/replicas/role.yaml grants exactly what the replicas
router calls, only on the two Deployments it names, and validates against the
official schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from retrain.errors import RouterError
from retrain.rollout.base import Progress, Split
from tests.harness.k8s.cluster import NAMESPACE
from tests.unit.retrain.rollout.replicas_support import (
    V1,
    V2,
    deployment,
    replicas_cluster,
)

ROLE_PATH = Path(__file__).resolve().parents[4] / "deploy/kubernetes/overlays/replicas/role.yaml"
KUBERNETES_VERSION = "1.33"


def role() -> dict[str, Any]:
    loaded = yaml.safe_load(ROLE_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_role_validates_against_the_official_schema() -> None:
    kubernetes_validate.validate(role(), KUBERNETES_VERSION, strict=True)


def test_the_role_grants_exactly_what_the_router_calls(tmp_path: Path) -> None:
    with replicas_cluster(tmp_path, role=role()) as (emulator, router, _):
        assert router.get_weights() == Split(0, None, None)  # not annotated yet
        assert router.set_weights(V1, V2, 50) == Split(50, "v1", "v2")
        assert not router.promote(V2).done
        assert router.promote(V2) == Progress(True)
        router.set_weights(V2, V1, 25)
        emulator.deployments.hold(NAMESPACE, "fraud")
        assert not router.rollback(V2).done
        emulator.deployments.release(NAMESPACE, "fraud")
        assert router.rollback(V2) == Progress(True)
        assert [entry for entry in emulator.log if entry[3] == 403] == []
        assert emulator.calls == granted(role()["rules"])


def test_the_role_grants_the_named_deployments_only(tmp_path: Path) -> None:
    with replicas_cluster(tmp_path, role=role()) as (emulator, router, _):
        emulator.store.create("deployments", NAMESPACE,
                              deployment("payments", "stable", 2, "s3://m/p.skops"))  # fmt: skip
        apps = client.AppsV1Api(router._apps.api_client)
        assert apps.read_namespaced_deployment("fraud", NAMESPACE).spec.replicas == 4
        for call in (
            lambda: apps.read_namespaced_deployment("payments", NAMESPACE),
            lambda: apps.patch_namespaced_deployment(
                "payments", NAMESPACE, {"spec": {"replicas": 0}}
            ),
            lambda: apps.list_namespaced_deployment(NAMESPACE),
        ):
            with pytest.raises(ApiException) as refused:
                call()
            assert refused.value.status == 403


def test_a_forbidden_deployment_is_a_fatal_error(tmp_path: Path) -> None:
    other = role()
    other["rules"][0]["resourceNames"] = ["fraud"]  # the canary's name left out
    with (
        replicas_cluster(tmp_path, role=other) as (_, router, _apps),
        pytest.raises(RouterError) as info,
    ):
        router.get_weights()
    assert not info.value.retriable
    assert "get Deployment ml/fraud-canary: 403" in str(info.value)
    assert "forbidden" in str(info.value)
