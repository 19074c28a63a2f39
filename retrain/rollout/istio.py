"""The ``istio`` router: the weights of two destinations of one HTTP route of an Istio
``VirtualService`` (``networking.istio.io/v1``; ``v1beta1`` through the settings: both
serve the same stored object).

Istio weights are percentages: the destinations of a route must sum to 100 (a single
destination is assumed to take 100, one without a weight among several takes 0).
driftwatch writes ``stable = 100 - p`` and ``canary = p``; another destination of the
route that carries weight is refused (fatal), as the sum would no longer be 100. The
route is picked by index or by ``http[].name``; a destination by its ``host`` exactly as
written in the VirtualService (a short name and an FQDN are different strings) and its
``subset`` (None: a destination without one). Promotion and rollback, and what a route
cannot do, are described in :mod:`retrain.rollout.weighted_route`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from retrain.errors import RouterError
from retrain.rollout.custom_objects import CustomObject, ObjectRef, connect
from retrain.rollout.weighted_route import Match, Pick, RouteShape, WeightedRoute

GROUP = "networking.istio.io"
SHAPE = RouteShape(
    rules="http", targets="route", rule_word="http route", default_weight=0, exclusive=True
)


@dataclass(frozen=True, slots=True)
class Destination:
    """A route destination: the ``host`` as written in the VirtualService, and a subset."""

    host: str
    subset: str | None = None

    def __str__(self) -> str:
        return self.host if self.subset is None else f"{self.host} subset {self.subset}"


@dataclass(frozen=True, slots=True)
class IstioSettings:
    """The VirtualService ``namespace``/``virtual_service``, its HTTP ``route`` (index or
    name) and the stable and canary destinations."""

    namespace: str
    virtual_service: str
    stable: Destination
    canary: Destination
    route: int | str = 0
    version: str = "v1"
    request_timeout: float = 10.0
    # Where the cluster is: the Pod's service account, or a kubeconfig and its context.
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False


class IstioRouter(WeightedRoute):
    """Splits one VirtualService HTTP route between two destinations."""

    @classmethod
    def connect(cls, settings: IstioSettings) -> IstioRouter:
        """The router for the configured cluster (in-cluster or a kubeconfig)."""
        return cls(connect(settings, "rollout.istio"), settings)

    def __init__(self, api_client: client.ApiClient, settings: IstioSettings) -> None:
        if settings.version not in ("v1", "v1beta1"):
            raise RouterError(
                f"VirtualService version {settings.version!r}: expected v1 or v1beta1",
                retriable=False,
            )
        ref = ObjectRef(
            GROUP,
            settings.version,
            "virtualservices",
            "VirtualService",
            settings.namespace,
            settings.virtual_service,
        )
        pick = Pick(
            rule=settings.route,
            stable=_destination(settings.stable),
            canary=_destination(settings.canary),
            stable_label=f"destination {settings.stable}",
            canary_label=f"destination {settings.canary}",
        )
        obj = CustomObject(api_client, ref, request_timeout=settings.request_timeout)
        super().__init__(obj, SHAPE, pick)


def _destination(wanted: Destination) -> Match:
    def match(entry: Mapping[str, Any]) -> bool:
        dest = entry.get("destination") or {}
        return bool(dest.get("host") == wanted.host and dest.get("subset") == wanted.subset)

    return match
