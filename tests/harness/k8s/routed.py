"""What each rollout router drives, set up on the API emulator as an operator would, and
read back through the official client as the cluster's data plane would act on it.

Per model, one object set in namespace ``ml`` named after the model: two Deployments
(``<model>`` and ``<model>-canary``) for ``replicas``, an HTTPRoute whose ``predict``
rule weighs the Services ``<model>-stable`` and ``<model>-canary`` for
``gateway-api``, a VirtualService whose ``primary`` route weighs the subsets
``stable`` and ``canary`` for ``istio``, and an InferenceService for ``kserve``.

:meth:`RoutedCluster.served` is the data plane: which model version receives what
weight of a model's requests, from the objects as they are now. A Service spreads
over the ready Pods of both Deployments, each Pod loading the URI its container's
``MODEL_URI`` names; a route's backends serve the versions the operator deployed
behind them (stable behind the stable backend, the candidate behind the canary one);
a KServe InferenceService gives ``canaryTrafficPercent`` to its latest revision (the
predictor's ``storageUri``) and the rest to the previously rolled-out one (the URI
the ``driftwatch/stable-uri`` annotation records), and all traffic to the latest
revision without the field.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from retrain.rollout.kserve import STABLE_URI
from tests.harness.k8s import custom
from tests.harness.k8s.cluster import NAMESPACE, api_client
from tests.harness.k8s.server import Emulator

CLUSTER_ROUTERS = ("replicas", "gateway-api", "istio", "kserve")
GATEWAY = ("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
ISTIO = ("networking.istio.io", "v1", "virtualservices", "VirtualService")
KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService")
TOTAL_REPLICAS = 4
URI_ENV = "MODEL_URI"

# version -> weight of the model's requests it receives
Shares = dict[str, int]


@dataclass(frozen=True)
class Versions:
    """A model's stable and candidate versions and their artifact URIs."""

    stable: str
    stable_uri: str
    canary: str
    canary_uri: str

    def by_uri(self, uri: str) -> str:
        return {self.stable_uri: self.stable, self.canary_uri: self.canary}[uri]


def deployment(name: str, track: str, replicas: int, uri: str) -> Any:
    """The manifest, as the plain mapping the client also accepts for a V1Deployment."""
    labels = {"app": name.removesuffix("-canary"), "track": track}
    return {
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.example/model-server:1",
                            "env": [{"name": URI_ENV, "value": uri}],
                        }
                    ]
                },
            },
        },
    }


def http_route(model: str) -> dict[str, Any]:
    return {
        "metadata": {"name": model},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {
                    "name": "predict",
                    "backendRefs": [
                        {"name": f"{model}-stable", "port": 8080, "weight": 100},
                        {"name": f"{model}-canary", "port": 8080, "weight": 0},
                    ],
                }
            ],
        },
    }


def virtual_service(model: str) -> dict[str, Any]:
    host = f"{model}.{NAMESPACE}.svc.cluster.local"
    return {
        "metadata": {"name": model},
        "spec": {
            "hosts": [host],
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": host, "subset": "stable"}, "weight": 100},
                        {"destination": {"host": host, "subset": "canary"}, "weight": 0},
                    ],
                }
            ],
        },
    }


def inference_service(model: str, uri: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": model,
            "annotations": {"serving.kserve.io/deploymentMode": "Serverless"},
        },
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}},
    }


class RoutedCluster:
    """The emulator holding every router's objects, and the data plane reading them."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        api = api_client(emulator.url)
        self.apps = client.AppsV1Api(api)
        self.objects = client.CustomObjectsApi(api)

    def seed(self, kind: str, model: str, versions: Versions) -> None:
        """The objects of router ``kind`` for ``model``, all traffic on stable."""
        if kind == "replicas":
            for body in (
                deployment(model, "stable", TOTAL_REPLICAS, versions.stable_uri),
                deployment(f"{model}-canary", "canary", 0, versions.stable_uri),
            ):
                self.apps.create_namespaced_deployment(NAMESPACE, body)
        elif kind == "gateway-api":
            self._create(GATEWAY, http_route(model))
        elif kind == "istio":
            self._create(ISTIO, virtual_service(model))
        elif kind == "kserve":
            self._create(KSERVE, inference_service(model, versions.stable_uri))
        else:
            raise ValueError(f"no cluster objects for router {kind!r}")

    def _create(self, what: tuple[str, str, str, str], obj: dict[str, Any]) -> None:
        # As ``kubectl apply`` leaves it: the API server's generation 1.
        group, version, plural, kind = what
        body = copy.deepcopy(obj)
        body.update(apiVersion=f"{group}/{version}", kind=kind)
        body["metadata"]["generation"] = 1
        self.emulator.store.create(custom.key(group, plural), NAMESPACE, body)

    def deployment(self, name: str) -> Any:
        return self.apps.read_namespaced_deployment(name, NAMESPACE)

    def custom(self, what: tuple[str, str, str, str], name: str) -> dict[str, Any]:
        group, version, plural, _ = what
        obj = self.objects.get_namespaced_custom_object(group, version, NAMESPACE, plural, name)
        assert isinstance(obj, dict)
        return obj

    def served(self, kind: str, model: str, versions: Versions) -> Shares:
        """Which version receives what weight of ``model``'s requests now."""
        if kind == "replicas":
            return self._pods(model, versions)
        if kind == "gateway-api":
            rule = self.custom(GATEWAY, model)["spec"]["rules"][0]
            return _weighted(rule["backendRefs"], lambda ref: ref["name"], model, versions)
        if kind == "istio":
            route = self.custom(ISTIO, model)["spec"]["http"][0]["route"]
            return _weighted(route, lambda r: r["destination"]["subset"], model, versions)
        if kind == "kserve":
            return _revisions(self.custom(KSERVE, model), versions)
        raise ValueError(f"no cluster objects for router {kind!r}")

    def _pods(self, model: str, versions: Versions) -> Shares:
        shares: Shares = {}
        for name in (model, f"{model}-canary"):
            dep = self.deployment(name)
            ready = dep.status.available_replicas or 0
            if ready:
                version = versions.by_uri(model_uri(dep))
                shares[version] = shares.get(version, 0) + ready
        return shares


def model_uri(dep: Any) -> str:
    env = dep.spec.template.spec.containers[0].env or []
    return str(next(e.value for e in env if e.name == URI_ENV))


def _weighted(targets: list[Any], name: Any, model: str, versions: Versions) -> Shares:
    behind = {
        f"{model}-stable": versions.stable,
        "stable": versions.stable,
        f"{model}-canary": versions.canary,
        "canary": versions.canary,
    }
    shares: Shares = {}
    for target in targets:
        weight = int(target.get("weight", 0))
        if weight:
            version = behind[name(target)]
            shares[version] = shares.get(version, 0) + weight
    return shares


def _revisions(isvc: Mapping[str, Any], versions: Versions) -> Shares:
    predictor = isvc["spec"]["predictor"]
    latest = versions.by_uri(predictor["model"]["storageUri"])
    percent = predictor.get("canaryTrafficPercent")
    if percent is None:
        return {latest: 100}
    previous = versions.by_uri(isvc["metadata"]["annotations"][STABLE_URI])
    shares = {previous: 100 - int(percent)}
    shares[latest] = shares.get(latest, 0) + int(percent)
    return {v: w for v, w in shares.items() if w}
