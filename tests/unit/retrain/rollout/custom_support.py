"""Custom objects in the emulator for the mesh and KServe router tests: seeding and
reading them as a cluster's other actors (an operator, a controller) would."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from retrain.rollout.base import Target
from tests.harness.k8s import custom
from tests.harness.k8s.server import Emulator

NAMESPACE = "ml"
NAME = "fraud"  # the placeholder object name of deploy/kubernetes/overlays/*/role.yaml
OVERLAYS = Path(__file__).resolve().parents[4] / "deploy" / "kubernetes" / "overlays"
STABLE = Target("3", "s3://models/fraud/3/model.skops", "a" * 64)
CANARY = Target("4", "s3://models/fraud/4/model.skops", "b" * 64)


ROUTE: dict[str, Any] = {
    "metadata": {"name": NAME, "labels": {"team": "fraud"}},
    "spec": {
        "parentRefs": [{"name": "gateway"}],
        "hostnames": ["fraud.example"],
        "rules": [
            {
                "name": "health",
                "matches": [{"path": {"type": "Exact", "value": "/healthz"}}],
                "backendRefs": [{"name": "fraud-stable", "port": 8080}],
            },
            {
                "name": "predict",
                "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}],
                "backendRefs": [
                    {"name": "fraud-stable", "port": 8080, "weight": 100},
                    {"name": "fraud-canary", "port": 8080, "weight": 0},
                    {"name": "fraud-shadow", "kind": "ServiceImport", "group": "x.io", "port": 80},
                ],
            },
        ],
    },
}
HOST = "fraud.ml.svc.cluster.local"
VIRTUAL_SERVICE: dict[str, Any] = {
    "metadata": {"name": NAME},
    "spec": {
        "hosts": [HOST],
        "http": [
            {
                "name": "debug",
                "match": [{"headers": {"x-debug": {"exact": "1"}}}],
                "route": [{"destination": {"host": HOST, "subset": "canary"}}],
            },
            {
                "name": "primary",
                "timeout": "2s",
                "route": [
                    {"destination": {"host": HOST, "subset": "stable"}, "weight": 100},
                    {"destination": {"host": HOST, "subset": "canary"}},
                    {"destination": {"host": "fraud-mirror", "port": {"number": 80}}},
                ],
            },
        ],
    },
}
PREDICTOR: dict[str, Any] = {
    "minReplicas": 1,
    "model": {
        "modelFormat": {"name": "sklearn"},
        "storageUri": STABLE.uri,
        "resources": {"limits": {"cpu": "1"}},
    },
}
INFERENCE_SERVICE: dict[str, Any] = {
    "metadata": {"name": NAME, "annotations": {"serving.kserve.io/deploymentMode": "Serverless"}},
    "spec": {"predictor": PREDICTOR},
}


@contextmanager
def emulator(role: Mapping[str, Any] | None = None) -> Iterator[Emulator]:
    emu = Emulator(role).start()
    try:
        yield emu
    finally:
        emu.stop()


def role(router: str) -> dict[str, Any]:
    loaded = yaml.safe_load((OVERLAYS / router / "role.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def seed(emu: Emulator, api_version: str, kind: str, plural: str, obj: dict[str, Any]) -> None:
    """Create ``obj`` as an operator's ``kubectl apply`` would."""
    body = copy.deepcopy(obj)
    body.update(apiVersion=api_version, kind=kind)
    body["metadata"]["generation"] = 1
    emu.store.create(custom.key(api_version.split("/", maxsplit=1)[0], plural), NAMESPACE, body)


def stored(emu: Emulator, group: str, plural: str, name: str = NAME) -> dict[str, Any]:
    return emu.store.get(custom.key(group, plural), NAMESPACE, name)


def edit(emu: Emulator, group: str, plural: str, change: Any, name: str = NAME) -> None:
    """Another writer changes the object (its resourceVersion moves on)."""
    emu.store.update(custom.key(group, plural), NAMESPACE, name, change)


def writes(emu: Emulator, plural: str) -> int:
    return emu.count("patch", plural) + emu.count("update", plural)
