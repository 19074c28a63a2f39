"""The ``gateway-api`` router: the weights of two ``backendRefs`` of one rule of a
Gateway API ``HTTPRoute`` (``gateway.networking.k8s.io/v1``).

Gateway API weights are relative, not percentages: a backend receives
``weight / sum(weights of the rule)`` of the rule's requests, a missing weight counts as
1 and a weight of 0 receives nothing. driftwatch writes ``stable = 100 - p`` and
``canary = p``, so the two weights read as percentages as long as no other backend of
the rule carries weight; another backend keeps its weight and its share (get_weights
reports the canary's share of the two, not of the rule). The backends are picked by
Service name in a rule picked by index or by ``rules[].name``; other rules and backends
are left as read. Promotion and rollback, and what a route cannot do (set the model a
backend Service serves), are described in :mod:`retrain.rollout.weighted_route`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from retrain.rollout.custom_objects import CustomObject, ObjectRef, connect
from retrain.rollout.weighted_route import Match, Pick, RouteShape, WeightedRoute

GROUP = "gateway.networking.k8s.io"
SHAPE = RouteShape(
    rules="rules", targets="backendRefs", rule_word="rule", default_weight=1, exclusive=False
)


@dataclass(frozen=True, slots=True)
class GatewayApiSettings:
    """The HTTPRoute ``namespace``/``route``, its ``rule`` (index or name) and the
    Services of the stable and canary backends."""

    namespace: str
    route: str
    stable_service: str
    canary_service: str
    rule: int | str = 0
    version: str = "v1"
    request_timeout: float = 10.0
    # Where the cluster is: the Pod's service account, or a kubeconfig and its context.
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False


class GatewayApiRouter(WeightedRoute):
    """Splits one HTTPRoute rule between two backend Services."""

    @classmethod
    def connect(cls, settings: GatewayApiSettings) -> GatewayApiRouter:
        """The router for the configured cluster (in-cluster or a kubeconfig)."""
        return cls(connect(settings, "rollout.gateway_api"), settings)

    def __init__(self, api_client: client.ApiClient, settings: GatewayApiSettings) -> None:
        ref = ObjectRef(
            GROUP, settings.version, "httproutes", "HTTPRoute", settings.namespace, settings.route
        )
        pick = Pick(
            rule=settings.rule,
            stable=_service(settings.stable_service),
            canary=_service(settings.canary_service),
            stable_label=f"backend Service {settings.stable_service}",
            canary_label=f"backend Service {settings.canary_service}",
        )
        obj = CustomObject(api_client, ref, request_timeout=settings.request_timeout)
        super().__init__(obj, SHAPE, pick)


def _service(name: str) -> Match:
    def match(ref: Mapping[str, Any]) -> bool:
        # A backendRef's group "" and kind Service are the defaults; other kinds are not ours.
        return (
            ref.get("name") == name
            and ref.get("kind", "Service") == "Service"
            and ref.get("group", "") == ""
        )

    return match
