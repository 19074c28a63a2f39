"""Two Deployments behind one Service, as an operator sets them up for the
``replicas`` router, on the API emulator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client

from retrain.rollout.base import Target
from retrain.rollout.replicas import ReplicasRouter
from retrain.rollout.settings import ReplicasSettings
from tests.harness.k8s.cluster import NAMESPACE, api_client, cluster, write_kubeconfig
from tests.harness.k8s.server import Emulator

STABLE, CANARY = "fraud", "fraud-canary"
V1 = Target("v1", "s3://models/fraud/v1.skops", "a" * 64)
V2 = Target("v2", "s3://models/fraud/v2.skops", "b" * 64)


def deployment(name: str, track: str, replicas: int, uri: str) -> Any:
    """The manifest, as the plain mapping the client also accepts for a V1Deployment."""
    labels = {"app": "fraud-model", "track": track}  # the Service selects app only
    return {
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "istio-proxy", "image": "proxy:1"},
                        {
                            "name": "server",
                            "image": "registry.example/fraud-server:3",
                            "env": [
                                {"name": "LOG_LEVEL", "value": "info"},
                                {"name": "MODEL_URI", "value": uri},
                            ],
                        },
                    ]
                },
            },
        },
    }


@contextmanager
def replicas_cluster(
    tmp_path: Path, role: Mapping[str, Any] | None = None, container_name: str = "server"
) -> Iterator[tuple[Emulator, ReplicasRouter, client.AppsV1Api]]:
    """The emulator with the two Deployments (stable at 4 replicas on v1, canary at 0),
    a router connected through a kubeconfig, and an unrestricted client to look."""
    with cluster(tmp_path, kubelet=False) as (emulator, _):
        apps = client.AppsV1Api(api_client(emulator.url))
        apps.create_namespaced_deployment(NAMESPACE, deployment(STABLE, "stable", 4, V1.uri))
        apps.create_namespaced_deployment(NAMESPACE, deployment(CANARY, "canary", 0, V1.uri))
        emulator.role = role
        emulator.calls.clear()  # what the router calls, not the setup
        emulator.log.clear()
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", emulator.url)
        cfg = ReplicasSettings(
            NAMESPACE, STABLE, CANARY, kubeconfig=str(kubeconfig), container=container_name,
            request_timeout=5.0,
        )  # fmt: skip
        yield emulator, ReplicasRouter.connect(cfg), apps


def served(emulator: Emulator, name: str) -> tuple[int, str | None, str | None, str | None]:
    """(replicas, MODEL_URI of the server container, version and sha256 annotations) of
    a Deployment, as stored."""
    spec = emulator.store.get("deployments", NAMESPACE, name)["spec"]
    template = spec["template"]
    server = next(c for c in template["spec"]["containers"] if c["name"] == "server")
    uri = next((e["value"] for e in server.get("env") or [] if e["name"] == "MODEL_URI"), None)
    annotations = template["metadata"].get("annotations") or {}
    return (spec["replicas"], uri, annotations.get("driftwatch/model-version"),
            annotations.get("driftwatch/model-sha256"))  # fmt: skip
