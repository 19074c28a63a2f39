"""Settings of the routers built here (``rollout.file``, ``rollout.replicas``) and of a
model's rollout (its steps, deadline and analysis), checked when they are made: a wrong
value raises a fatal :class:`RouterError` naming its key.

The service's configuration (``service/config``) validates the same keys at start-up;
these checks keep a router built any other way (a test, a script) from running on a
value it cannot honour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

from retrain.errors import RouterError
from retrain.rollout.span import AnalysisSettings

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


@dataclass(frozen=True, slots=True)
class RolloutStep:
    """One step of a rollout: the canary's ``weight`` (percent of traffic), the least
    time it runs and the least canary events its span holds before it is judged."""

    weight: int
    min_duration: timedelta = timedelta(minutes=10)
    min_events: int = 500


DEFAULT_STEPS = (RolloutStep(5), RolloutStep(25), RolloutStep(50), RolloutStep(100))


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """One model's rollout (``models.<name>.rollout``).

    ``enabled`` starts a rollout when a run is accepted (``start`` works either way).
    ``step_deadline`` is how long past its ``min_duration`` a step may wait for a
    verdict before the rollout pauses; ``max_failed_checks`` failed checks roll it
    back. ``task`` is the model's, for the analysis.
    """

    model: str
    steps: tuple[RolloutStep, ...] = DEFAULT_STEPS
    enabled: bool = False
    step_deadline: timedelta = timedelta(hours=1)
    max_failed_checks: int = 1
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    task: str = "classification"

    def __post_init__(self) -> None:
        key = f"models.{self.model}.rollout"
        if not self.steps:
            raise _bad(f"{key}.steps", "at least one step")
        weights = [s.weight for s in self.steps]
        if any(not 1 <= w <= 100 for w in weights) or weights != sorted(set(weights)):
            raise _bad(f"{key}.steps", f"weights must increase within 1..100, got {weights}")
        if weights[-1] != 100:
            raise _bad(f"{key}.steps", f"the last step's weight must be 100, got {weights[-1]}")
        if self.max_failed_checks < 1:
            raise _bad(f"{key}.max_failed_checks", "expected at least 1")
        _check_latency(f"{key}.analysis", self.analysis)


def _check_latency(key: str, analysis: AnalysisSettings) -> None:
    """The latency check's settings, which :func:`drift.canary.latency_ratio` would
    otherwise refuse only once a step is judged."""
    if not 0.0 < analysis.latency_percentile < 100.0:
        raise _bad(f"{key}.latency_percentile", "expected a percentile in (0, 100)")
    if not (math.isfinite(analysis.latency_max_ratio) and analysis.latency_max_ratio > 1.0):
        raise _bad(f"{key}.latency_max_ratio", "expected a finite ratio above 1")
    if analysis.latency_min_samples < 1:
        raise _bad(f"{key}.latency_min_samples", "expected at least 1")
