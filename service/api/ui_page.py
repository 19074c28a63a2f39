"""What the overview page shows of each model, read with the API's own queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from db.registry import RegistryRepository
from db.reports import DriftReportRepository
from service.api import views
from service.api.charts import Chart, Point, line_chart
from service.api.schemas import (
    DriftSummary,
    FeatureBody,
    PerformanceSummary,
    RunSummary,
    Version,
)
from service.api.ui_rollout import RolloutView, rollout_view
from service.api.ui_runs import RunView, run_views

WINDOWS = 48  # newest windows charted per model
RUNS = 10  # newest runs listed per model


@dataclass(frozen=True)
class ModelPanel:
    """One model's section. ``performance`` is None for a model without labels: the page
    then has no performance section for it at all."""

    name: str
    drift_chart: Chart
    latest_drift: DriftSummary | None
    performance: Performance | None
    versions: list[Version]
    runs: list[RunView]
    # The newest rollout (None: the model never had one).
    rollout: RolloutView | None = None
    # The newest window's per-feature verdicts, in the report's order.
    features: list[FeatureBody] = field(default_factory=list)

    @property
    def active_run(self) -> RunSummary | None:
        return next((r.summary for r in self.runs if r.summary.active), None)


@dataclass(frozen=True)
class Performance:
    chart: Chart
    latest: PerformanceSummary | None


def panel(
    session: Session, model: str, labels: bool, now: datetime, weights: Sequence[int] = ()
) -> ModelPanel:
    drift = [views.drift(r) for r in views.drift_page(session, model, None, None, WINDOWS, 0)]
    drift = drift[:WINDOWS]
    share = line_chart(
        "drifted feature share",
        [
            Point(r.window_start, r.model_version, r.drifted_share, r.dataset_drift is True)
            for r in drift
        ],
    )
    performance = None
    if labels:
        rows = views.performance_page(session, model, None, None, WINDOWS, 0)[:WINDOWS]
        perf = [views.performance(r) for r in rows]
        accuracy = line_chart(
            "accuracy",
            [Point(r.window_start, r.model_version, r.accuracy, r.degraded is True) for r in perf],
        )
        performance = Performance(accuracy, perf[0] if perf else None)
    runs = run_views(session, views.run_page(session, model, RUNS, 0)[:RUNS], now)
    detail = DriftReportRepository(session).get(drift[0].id) if drift else None
    features = [] if detail is None else [views.feature(f) for f in detail.features]
    versions = [views.version(v) for v in reversed(RegistryRepository(session).versions(model))]
    return ModelPanel(
        name=model,
        drift_chart=share,
        latest_drift=drift[0] if drift else None,
        performance=performance,
        versions=versions,
        runs=runs,
        rollout=rollout_view(session, model, weights),
        features=features,
    )


def panels(
    session: Session,
    models: Mapping[str, bool],
    now: datetime,
    steps: Mapping[str, Sequence[int]] | None = None,
) -> list[ModelPanel]:
    """Every model's section; ``steps`` holds each model's configured step weights."""
    steps = steps or {}
    return [panel(session, name, models[name], now, steps.get(name, ())) for name in sorted(models)]


def notice(params: Mapping[str, str], models: Mapping[str, bool]) -> str | None:
    """The message a retrain form's redirect asks for. Built here from a fixed set of
    outcomes, so a crafted link cannot put its own words on the page."""
    model, outcome, run = params.get("model"), params.get("flash"), params.get("run")
    if model not in models or outcome is None:
        return None
    number = f" {run}" if run is not None and run.isdigit() and len(run) < 20 else ""
    if outcome == "started" and number:
        return f"{model}: retraining run{number} started."
    if outcome == "active":
        which = f" (run{number})" if number else ""
        return f"{model}: a run is already active{which}; nothing started."
    if outcome == "held":
        return f"{model}: the retrain policy held the request back; nothing started."
    return None
