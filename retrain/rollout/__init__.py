"""Rollouts: moving live traffic from the production version to an accepted candidate.

:mod:`retrain.rollout.base` holds the router protocol every backend implements;
``rollout.router`` picks the backend and :func:`make_router` builds it:

=================  ==========================================  =====================
name               module                                      settings section
=================  ==========================================  =====================
``file``           :mod:`retrain.rollout.file`                 ``rollout.file``
``replicas``       :mod:`retrain.rollout.replicas`             ``rollout.replicas``
``gateway-api``    :mod:`retrain.rollout.gateway_api`          ``rollout.gateway_api``
``istio``          :mod:`retrain.rollout.istio`                ``rollout.istio``
``kserve``         :mod:`retrain.rollout.kserve`               ``rollout.kserve``
``manual``         :mod:`retrain.rollout.manual` (``none``)    none
``fake``           :mod:`retrain.rollout.fake`                 none
=================  ==========================================  =====================

The cluster-backed routers are imported only when chosen (the ``kubernetes`` client
is heavy) and each is built by its class's ``connect(section)``: the section is the
settings object of its row, and ``connect`` loads the cluster configuration. Any
other name is a fatal :class:`RouterError` naming ``rollout.router``.
"""

from __future__ import annotations

import importlib
from typing import Any

from retrain.errors import RouterError
from retrain.rollout.base import Progress, Router, Split, Target
from retrain.rollout.fake import FakeRouter
from retrain.rollout.file import FileRouter
from retrain.rollout.manual import ManualRouter

# name -> (module of retrain.rollout, class with a ``connect(section)``, settings section)
CLUSTER_ROUTERS = {
    "replicas": ("replicas", "ReplicasRouter", "replicas"),
    "gateway-api": ("gateway_api", "GatewayApiRouter", "gateway_api"),
    "istio": ("istio", "IstioRouter", "istio"),
    "kserve": ("kserve", "KServeRouter", "kserve"),
}
ROUTERS = ("file", *CLUSTER_ROUTERS, "manual", "none", "fake")

__all__ = [
    "CLUSTER_ROUTERS",
    "ROUTERS",
    "FakeRouter",
    "FileRouter",
    "ManualRouter",
    "Progress",
    "Router",
    "Split",
    "Target",
    "make_router",
]


def make_router(kind: str, settings: object, *, model: str) -> Router:
    """The router called ``kind`` for ``model``, configured from ``settings``' section
    of that name (``settings.file``, ``settings.replicas``, ``settings.gateway_api``…).
    An unknown name or a missing section raises a fatal :class:`RouterError` naming
    the key."""
    if kind in ("manual", "none"):
        return ManualRouter(model)
    if kind == "fake":
        return FakeRouter()
    if kind == "file":
        return FileRouter(_section(settings, "file", kind).path, model)
    if kind in CLUSTER_ROUTERS:
        module, class_name, section = CLUSTER_ROUTERS[kind]
        # Imported by name, and only when chosen: the kubernetes client is heavy.
        router_class = getattr(importlib.import_module(f"retrain.rollout.{module}"), class_name)
        router: Router = router_class.connect(_section(settings, section, kind))
        return router
    raise RouterError(
        f"rollout.router: unknown router {kind!r}; expected one of {', '.join(ROUTERS)}",
        retriable=False,
    )


def _section(settings: object, name: str, kind: str) -> Any:
    section = getattr(settings, name, None)
    if section is None:
        raise RouterError(f"rollout.{name}: required when rollout.router is {kind}",
                          retriable=False)  # fmt: skip
    return section
