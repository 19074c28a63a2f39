"""The bodies of the rollout routes and the canary verdict routes (OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.api.schemas import Body, Page

# A check's other numbers; an infinite one (an unbounded interval) is null in JSON.
Details = dict[str, float | None]


class RolloutSummary(Body):
    id: int
    model: str
    run_id: int | None
    phase: str
    active: bool
    step: int = Field(description="the current step, counted from 1")
    canary_percent: int
    stable: str | None
    canary: str | None
    reason: str | None
    paused_from: str | None
    failed_checks: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RolloutPhaseEntry(Body):
    phase: str
    step: int
    note: str
    entered_at: datetime


class WeightEntry(Body):
    step: int
    canary_percent: int | None = Field(description="null: the model's steps are not configured")
    at: datetime


class AnalysisCheck(Body):
    check: str
    outcome: Literal["pass", "fail", "inconclusive"]
    value: float | None
    threshold: float
    n_canary: int
    n_stable: int
    reason: str
    details: Details
    span_start: datetime
    span_end: datetime
    analysed_at: datetime


class StepAnalyses(Body):
    step: int
    checks: list[AnalysisCheck]


class RolloutDetail(RolloutSummary):
    step_started_at: datetime | None
    applied_at: datetime | None
    phase_deadline: datetime | None
    router_errors: int
    history: list[RolloutPhaseEntry]
    weights: list[WeightEntry]
    analyses: list[StepAnalyses]


class RolloutPage(Page):
    items: list[RolloutSummary]


class RolloutStartRequest(Body):
    """The accepted run whose candidate rolls out, by the run's id or by the candidate's
    version name: exactly one of the two."""

    run_id: int | None = Field(default=None, ge=1, le=2**62, description="an accepted run")
    candidate: str | None = Field(
        default=None, min_length=1, max_length=200, description="its candidate's version"
    )

    @model_validator(mode="after")
    def _one(self) -> RolloutStartRequest:
        if (self.run_id is None) == (self.candidate is None):
            raise ValueError("give exactly one of run_id and candidate")
        return self


class RolloutActionRequest(Body):
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class RolloutChange(Body):
    """A transition recorded: the rollout's phase now; the router call it needs is made
    by the leader's next rollout tick."""

    rollout_id: int
    model: str
    phase: str
    message: str


class VerdictCheck(Body):
    name: str
    outcome: Literal["pass", "fail", "inconclusive"]
    value: float | None
    threshold: float
    n_canary: int
    n_stable: int
    reason: str
    details: Details


class VerdictBody(Body):
    """The analysis verdict: ``verdict`` is what an Argo Rollouts ``web`` metric reads
    (``jsonPath: "{$.verdict}"``)."""

    verdict: Literal["pass", "fail", "inconclusive"]
    reason: str
    model: str
    stable: str | None
    canary: str | None
    rollout_id: int | None = None
    canary_percent: int | None
    since: datetime | None
    until: datetime | None
    checks: list[VerdictCheck]


class FlaggerPayload(BaseModel):
    """What Flagger POSTs to a webhook: the Canary's name and namespace, its phase, a
    checksum of its spec and the webhook's ``metadata`` (strings). Fields Flagger may
    add later are ignored."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=253)
    namespace: str = Field(max_length=253)
    phase: str = Field(default="", max_length=64)
    checksum: str = Field(default="", max_length=200)
    metadata: dict[str, Annotated[str, Field(max_length=500)]] = Field(
        default_factory=dict, max_length=32
    )
