"""What a rollout's analysis judges, and how: the interface between the rollout state
machine (which decides when a step is analysed and stores the outcome) and the
analysis (:mod:`retrain.rollout.analysis`, which reads the live stream's per-version
aggregates and applies :mod:`drift.canary`'s checks).

Versions are registry version names (``v1``, ``run-7``): the serving layer stamps
the version it served into each prediction event's ``model_version``, so the
stream's per-version aggregates are the registry's versions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from drift.canary import Check


@dataclass(frozen=True, slots=True)
class Span:
    """One analysis: ``canary`` against ``stable`` on the model's events with event
    time in [``start``, ``end``), while the router sent ``canary_percent`` of traffic
    to the canary. ``task`` is the model's (``classification`` or ``regression``)."""

    model: str
    stable: str
    canary: str
    start: datetime
    end: datetime
    canary_percent: int
    task: str = "classification"


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """Thresholds of the checks (``models.<name>.rollout.analysis``)."""

    # Labelled performance: the canary may be worse than stable by at most ``margin``
    # (accuracy, or mean absolute error for regressors), one-sided at ``alpha``.
    margin: float = 0.02
    alpha: float = 0.05
    min_labeled: int = 200
    # Prediction distributions, canary against stable: Jensen-Shannon distance.
    divergence_threshold: float = 0.1
    min_events: int = 500
    # Sample-ratio mismatch of the canary's share of events against the router's weight.
    srm_alpha: float = 0.001
    # Latency, when events carry ``latency_ms``: canary percentile over stable's, with
    # at least ``latency_min_samples`` latencies per version.
    latency_percentile: float = 95.0
    latency_max_ratio: float = 1.5
    latency_min_samples: int = 200


# The analysis as the state machine calls it: every check's outcome on one span.
Analyse = Callable[[Session, Span, AnalysisSettings], list[Check]]
