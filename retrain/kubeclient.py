"""What every Kubernetes-backed part of :mod:`retrain` shares: building the API client
from a kubeconfig or the in-cluster service account, and reading the API server's own
message out of an :class:`ApiException`.

The executor (``retrain.kubernetes``) and the routers (``rollout.<router>``) each name
their own settings key in errors, so the caller passes its key prefix and the error
type to raise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from kubernetes import client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

# Statuses a later attempt may get past: no answer at all (0), timeouts, throttling and
# server errors. Everything else (401, 403, 404, 422) is a configuration problem.
RETRIABLE_STATUS = frozenset({0, 408, 429, 500, 502, 503, 504})


class ClusterConfig(Protocol):
    """Where the cluster is: the service account's own (in-cluster) or a kubeconfig."""

    @property
    def kubeconfig(self) -> str | None: ...
    @property
    def context(self) -> str | None: ...
    @property
    def in_cluster(self) -> bool: ...


def api_client(
    cfg: ClusterConfig, prefix: str, error: Callable[[str], Exception]
) -> client.ApiClient:
    """The API client for ``cfg``; a configuration that cannot be loaded raises
    ``error(message)`` naming ``<prefix>.in_cluster`` or ``<prefix>.kubeconfig``."""
    configuration = client.Configuration()
    try:
        if cfg.in_cluster:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=cfg.kubeconfig,
                context=cfg.context,
                client_configuration=configuration,
            )
    except (k8s_config.ConfigException, OSError) as exc:
        key = "in_cluster" if cfg.in_cluster else "kubeconfig"
        raise error(f"{prefix}.{key}: {exc}") from exc
    return client.ApiClient(configuration)


def api_reason(exc: ApiException) -> str:
    """The API server's own message (its Status body), else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "no reason")


def is_retriable(exc: ApiException) -> bool:
    """Whether the same request may succeed later."""
    status = int(exc.status or 0)
    return status in RETRIABLE_STATUS or status >= 500
