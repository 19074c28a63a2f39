"""The API's response and request bodies (what the OpenAPI document describes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    message: str
    model_config = ConfigDict(extra="allow")


class Version(Body):
    id: int
    version: str
    stage: str
    uri: str
    sha256: str
    metrics: dict[str, Any]
    run_id: int | None
    created_at: datetime


class DriftSummary(Body):
    id: int
    model: str
    model_version: str
    window_start: datetime
    window_end: datetime
    events: int
    features_drifted: int
    features_judged: int
    drifted_share: float | None
    dataset_drift: bool | None
    confirmed: bool
    prediction_drifted: bool | None
    created_at: datetime


class PerformanceSummary(Body):
    id: int
    model: str
    model_version: str
    window_start: datetime
    window_end: datetime
    task: str
    predicted: int
    labeled: int
    label_coverage: float | None
    accuracy: float | None
    roc_auc: float | None
    rmse: float | None
    mae: float | None
    degraded: bool | None
    verdict: str
    concept_drift: bool | None
    revision: int = Field(
        default=0, description="0 for the first report; one more per batch of late labels"
    )
    revised_at: datetime | None = None


class RunSummary(Body):
    id: int
    model: str
    phase: str
    active: bool
    trigger: str
    reason: str
    verdict: str | None
    failure_reason: str | None
    created_at: datetime
    finished_at: datetime | None


class ModelSummary(Body):
    name: str
    labels: bool
    champion: Version | None


class ModelDetail(Body):
    name: str
    labels: bool
    champion: Version | None
    candidates: list[Version]
    latest_drift: DriftSummary | None
    latest_performance: PerformanceSummary | None
    active_run: RunSummary | None


class Page(Body):
    limit: int
    offset: int
    next_offset: int | None


class ModelPage(Page):
    items: list[ModelSummary]


class DriftPage(Page):
    items: list[DriftSummary]


class PerformancePage(Page):
    items: list[PerformanceSummary]


class RunPage(Page):
    items: list[RunSummary]


class FeatureBody(Body):
    feature: str
    kind: str
    method: str | None
    score: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool | None
    reference_count: int
    current_count: int
    unseen_categories: list[str]


class ReportBody(Body):
    summary: DriftSummary
    reference_rows: int
    prediction_method: str | None
    prediction_score: float | None
    prediction_p_value: float | None
    features: list[FeatureBody]
    html_available: bool


class PhaseBody(Body):
    phase: str
    note: str
    entered_at: datetime


class GateBody(Body):
    gate: str
    metric: str | None
    slice: str | None
    champion_value: float | None
    candidate_value: float | None
    threshold: float
    passed: bool


class RunDetail(Body):
    run: RunSummary
    data_from: datetime
    data_to: datetime
    # Where the exported training data went and how many rows it held (set once exported),
    # the detected change point the data window starts at, and why the window is as it is.
    data_uri: str | None
    data_rows: int | None
    change_onset: datetime | None
    data_note: str | None
    champion_version_id: int | None
    candidate_version_id: int | None
    # The last lines each Job wrote: what a failure_reason of "exit code 1" leaves out.
    train_log_tail: str | None
    validate_log_tail: str | None
    rollout_ids: list[int]
    history: list[PhaseBody]
    gates: list[GateBody]


class RetrainRequest(Body):
    reason: str = Field(default="requested through the API", min_length=1, max_length=500)


class RetrainAccepted(Body):
    run_id: int
    model: str
    reason: str


class Status(Body):
    status: str
    problems: list[str] = []
