"""The emulator's Deployments behave as the API server and the controller do on what
the replicas router relies on: strategic merge by name, generation on spec changes,
availability under the test's control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness.k8s.cluster import NAMESPACE, api_client, cluster
from tests.unit.retrain.rollout.replicas_support import deployment


def plain(apps: client.AppsV1Api, obj: object) -> Any:
    """A client model as the JSON the API server sent."""
    return apps.api_client.sanitize_for_serialization(obj)


def test_strategic_merge_patches_named_lists_and_spec_changes_bump_the_generation(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, kubelet=False) as (emulator, _):
        apps = client.AppsV1Api(api_client(emulator.url))
        made = plain(
            apps, apps.create_namespaced_deployment(
                NAMESPACE, deployment("fraud", "stable", 2, "s3://m/v1.skops")
            ),
        )  # fmt: skip
        assert made["metadata"]["generation"] == 1
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "server", "env": [{"name": "MODEL_URI", "value": "s3://m/v2.skops"},
                                       {"name": "NEW", "value": "1"}]}]}}}}  # fmt: skip
        patched = plain(apps, apps.patch_namespaced_deployment("fraud", NAMESPACE, patch))
        proxy, server = patched["spec"]["template"]["spec"]["containers"]
        assert (proxy["name"], proxy["image"], server["image"]) == (
            "istio-proxy",
            "proxy:1",
            "registry.example/fraud-server:3",
        )
        assert [(e["name"], e["value"]) for e in server["env"]] == [
            ("LOG_LEVEL", "info"), ("MODEL_URI", "s3://m/v2.skops"), ("NEW", "1")
        ]  # fmt: skip
        assert patched["metadata"]["generation"] == 2
        same = plain(apps, apps.patch_namespaced_deployment("fraud", NAMESPACE, patch))
        assert same["metadata"]["generation"] == 2  # no spec change


def test_availability_follows_reads_unless_held(tmp_path: Path) -> None:
    with cluster(tmp_path, kubelet=False) as (emulator, _):
        apps = client.AppsV1Api(api_client(emulator.url))
        apps.create_namespaced_deployment(NAMESPACE, deployment("fraud", "stable", 3, "u"))
        status = apps.read_namespaced_deployment("fraud", NAMESPACE).status
        assert status is not None
        assert (status.observed_generation, status.updated_replicas,
                status.available_replicas) == (1, 3, 3)  # fmt: skip
        emulator.deployments.hold(NAMESPACE, "fraud")
        patched = apps.patch_namespaced_deployment("fraud", NAMESPACE, {"spec": {"replicas": 4}})
        assert (
            patched.status is not None and patched.status.observed_generation == 1
        )  # the controller has not acted yet
        status = apps.read_namespaced_deployment("fraud", NAMESPACE).status
        assert status is not None
        assert (status.observed_generation, status.updated_replicas, status.available_replicas) == (
            2,
            4,
            None,
        )  # zero counts are left out
        emulator.deployments.release(NAMESPACE, "fraud")
        emulator.deployments.tick()
        status = emulator.store.get("deployments", NAMESPACE, "fraud")["status"]
        assert status["availableReplicas"] == 4


def test_a_deployment_whose_selector_misses_its_labels_is_invalid(tmp_path: Path) -> None:
    with cluster(tmp_path, kubelet=False) as (emulator, _):
        apps = client.AppsV1Api(api_client(emulator.url))
        bad = deployment("fraud", "stable", 1, "u")
        bad["spec"]["selector"]["matchLabels"]["track"] = "canary"
        with pytest.raises(ApiException) as info:
            apps.create_namespaced_deployment(NAMESPACE, bad)
        assert info.value.status == 422
