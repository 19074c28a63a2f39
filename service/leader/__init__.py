"""Leader election: which replica runs the scheduler's acting jobs.

One :class:`~service.leader.base.Elector` protocol, one module per backend
(``kubernetes``: a Lease; ``postgres``: a session advisory lock; ``none``: always
leader) and :func:`make_elector`, keyed by ``leader.backend``, which refuses a name
it has no backend for. ``auto`` picks ``kubernetes`` inside a cluster
(``KUBERNETES_SERVICE_HOST`` set), else ``postgres`` when the database is PostgreSQL,
else ``none`` (SQLite: one process).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from service.config import Config
from service.leader.base import Elector
from service.leader.errors import LeaderError
from service.leader.none import AlwaysLeader

__all__ = ["BACKENDS", "AlwaysLeader", "Elector", "LeaderError", "make_elector", "resolve_backend"]

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def resolve_backend(cfg: Config, env: Mapping[str, str]) -> str:
    """The backend ``leader.backend`` names, with ``auto`` decided from the surroundings."""
    backend = cfg.leader.backend
    if backend != "auto":
        return backend
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    return "postgres" if _is_postgres(cfg.database.url) else "none"


def identity(env: Mapping[str, str]) -> str:
    """This replica's name in a Lease: the pod (its hostname) and the process."""
    return f"{env.get('POD_NAME') or socket.gethostname()}_{os.getpid()}"


def make_elector(cfg: Config, env: Mapping[str, str] | None = None) -> Elector:
    """The configured elector, not started. Config admits only the names of
    :data:`BACKENDS` (and ``auto``); a name without a builder is refused here too, never
    read as another backend."""
    env = os.environ if env is None else env
    backend = resolve_backend(cfg, env)
    build = BACKENDS.get(backend)
    if build is None:
        raise LeaderError(
            f"leader.backend: unknown backend {backend!r}; expected auto, "
            + ", ".join(sorted(BACKENDS))
        )
    return build(cfg, env)


def _none(cfg: Config, env: Mapping[str, str]) -> Elector:
    return AlwaysLeader()


def _postgres(cfg: Config, env: Mapping[str, str]) -> Elector:
    if not _is_postgres(cfg.database.url):
        raise LeaderError(
            "leader.backend: postgres needs a PostgreSQL database.url; "
            "use none for a single process on SQLite"
        )
    from service.leader.postgres import AdvisoryLockElector, lock_engine

    lc = cfg.leader
    engine = lock_engine(cfg.database.url, lc.request_timeout)
    return AdvisoryLockElector(engine, lc.lease_name, lc.retry_period, lc.renew_deadline)


def _kubernetes(cfg: Config, env: Mapping[str, str]) -> Elector:
    from service.leader.kubernetes import LeaseElector

    lc = cfg.leader
    api_client, namespace = _cluster(cfg, env)
    return LeaseElector(
        api_client,
        name=lc.lease_name,
        namespace=namespace,
        identity=identity(env),
        lease_duration=lc.lease_duration,
        renew_deadline=lc.renew_deadline,
        retry_period=lc.retry_period,
        request_timeout=lc.request_timeout,
    )


# The factory's backends, by the name ``leader.backend`` gives (``auto`` resolves to one).
BACKENDS: Mapping[str, Callable[[Config, Mapping[str, str]], Elector]] = {
    "kubernetes": _kubernetes,
    "none": _none,
    "postgres": _postgres,
}


def _is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def _cluster(cfg: Config, env: Mapping[str, str]) -> tuple[Any, str]:
    """The API client (in-cluster, or ``leader.kubeconfig``) and the Lease's namespace."""
    from kubernetes import client
    from kubernetes import config as k8s_config

    lc = cfg.leader
    configuration = client.Configuration()
    in_cluster = lc.kubeconfig is None and bool(env.get("KUBERNETES_SERVICE_HOST"))
    namespace = lc.namespace
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            if namespace is None:
                namespace = SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=lc.kubeconfig, context=lc.context, client_configuration=configuration
            )
            if namespace is None:
                namespace = _context_namespace(lc.kubeconfig, lc.context)
    except (k8s_config.ConfigException, OSError) as exc:
        key = "namespace" if in_cluster and lc.namespace is None else "kubeconfig"
        raise LeaderError(f"leader.{key}: {exc}") from exc
    if not namespace:
        raise LeaderError(
            "leader.namespace: not set, and the kubeconfig context names no namespace"
        )
    return client.ApiClient(configuration), namespace


def _context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    from kubernetes import config as k8s_config

    contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    chosen = active
    for c in contexts:
        if context is not None and c.get("name") == context:
            chosen = c
    ns = (chosen or {}).get("context", {}).get("namespace")
    return str(ns) if ns else None
