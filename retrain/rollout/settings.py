"""Settings of the routers built here (``rollout.file``, ``rollout.replicas``), checked
when they are made: a wrong value raises a fatal :class:`RouterError` naming its key.

The service's configuration (``service/config``) validates the same keys at start-up;
these checks keep a router built any other way (a test, a script) from running on a
value it cannot honour.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrain.errors import RouterError

DEFAULT_URI_ENV = "MODEL_URI"


def _bad(key: str, what: str) -> RouterError:
    return RouterError(f"{key}: {what}", retriable=False)


@dataclass(frozen=True, slots=True)
class FileSettings:
    """``rollout.file``: the JSON file the serving layer reads (:mod:`retrain.rollout.file`)."""

    path: str

    def __post_init__(self) -> None:
        if not self.path:
            raise _bad("rollout.file.path", "required")


@dataclass(frozen=True, slots=True)
class ReplicasSettings:
    """``rollout.replicas``: two Deployments behind one Service
    (:mod:`retrain.rollout.replicas`).

    ``total_replicas`` is what both Deployments add up to during the canary (and
    what the stable one runs after promotion); it sets the granularity of the split,
    100 / total_replicas percent. ``container`` names the container that serves the
    model (None: the first); ``uri_env`` the environment variable that carries the
    model's URI to it. The cluster is reached as the executor reaches it: the
    in-cluster service account, or ``kubeconfig`` (None: the default file) and
    ``context``.
    """

    namespace: str
    stable_deployment: str
    canary_deployment: str
    total_replicas: int = 4
    container: str | None = None
    uri_env: str = DEFAULT_URI_ENV
    request_timeout: float = 10.0
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False

    def __post_init__(self) -> None:
        for key in ("namespace", "stable_deployment", "canary_deployment", "uri_env"):
            if not getattr(self, key):
                raise _bad(f"rollout.replicas.{key}", "required")
        if self.stable_deployment == self.canary_deployment:
            raise _bad(
                "rollout.replicas.canary_deployment",
                f"must differ from stable_deployment ({self.stable_deployment!r})",
            )
        if isinstance(self.total_replicas, bool) or not isinstance(self.total_replicas, int):
            raise _bad("rollout.replicas.total_replicas", "expected an integer")
        if self.total_replicas < 2:
            raise _bad(
                "rollout.replicas.total_replicas",
                f"expected at least 2 (one stable and one canary replica), got "
                f"{self.total_replicas}",
            )
        if not self.request_timeout > 0:
            raise _bad("rollout.replicas.request_timeout", "expected a positive duration")
