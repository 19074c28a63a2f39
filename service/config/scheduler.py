"""The ``leader`` and ``retention`` sections: who runs the scheduler's acting jobs, and
how long the tables they fill keep their rows."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from service.config.base import Duration, Strict

# The client library's election loop refuses (sys.exit) a period under one second and a
# renew deadline within 1.2 retry periods; checked here so that it never gets that far.
_JITTER = 1.2


def _human(seconds: float) -> str:
    """``seconds`` as the config would write it: 7d, 12h, 30m, 10s or 1.5s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


class LeaderConfig(Strict):
    """``leader``: one replica runs the jobs that write reports, runs and alerts."""

    backend: Literal["auto", "kubernetes", "postgres", "none"] = Field(
        default="auto",
        description="auto, kubernetes, postgres or none (auto: kubernetes inside a cluster, "
        "else postgres on a PostgreSQL database, else none)",
    )
    lease_name: str = Field(
        default="driftwatch",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="a Lease name (lower-case DNS label); it also names the advisory lock",
    )
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="the Lease's namespace (default: the pod's own)",
    )
    kubeconfig: str | None = None
    context: str | None = None
    lease_duration: Duration = Field(default=15.0, ge=1, description="at least 1s, e.g. 15s")
    renew_deadline: Duration = Field(default=10.0, ge=1, description="at least 1s, e.g. 10s")
    retry_period: Duration = Field(default=2.0, ge=1, description="at least 1s, e.g. 2s")
    request_timeout: Duration = Field(default=5.0, gt=0, description="a duration such as 5s")

    @field_validator("lease_duration")
    @classmethod
    def _whole_seconds(cls, v: float) -> float:
        # A Lease holds it as integer seconds (leaseDurationSeconds).
        if v != int(v):
            raise ValueError("expected a whole number of seconds, at least 1s")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> LeaderConfig:
        if self.renew_deadline >= self.lease_duration:
            raise ValueError(
                f"renew_deadline ({_human(self.renew_deadline)}) must be shorter than "
                f"lease_duration ({_human(self.lease_duration)})"
            )
        if self.renew_deadline <= _JITTER * self.retry_period:
            raise ValueError(
                f"renew_deadline ({_human(self.renew_deadline)}) must be longer than "
                f"{_JITTER:g} x retry_period ({_human(self.retry_period)})"
            )
        return self


class RetentionConfig(Strict):
    """``retention``: what the leader's retention job deletes, and when."""

    enabled: bool = True
    interval: Duration = Field(default=3600.0, gt=0, description="a period such as 1h")
    sketches: Duration = Field(
        default=7 * 86400.0, gt=0, description="how long evaluated windows keep sketches, e.g. 7d"
    )
    reports: Duration = Field(
        default=90 * 86400.0, gt=0, description="how long drift and performance reports stay"
    )
    concept_drift_alarms: Duration = Field(
        default=90 * 86400.0,
        gt=0,
        description="how long concept-drift alarms stay, by prediction time, e.g. 90d",
    )
    outbox: Duration = Field(
        default=30 * 86400.0, gt=0, description="how long finished alert events stay, e.g. 30d"
    )
    idempotency_keys: Duration = Field(
        default=7 * 86400.0, gt=0, description="how long a retrain request's key is replayed"
    )
    detector_states: Duration = Field(
        default=30 * 86400.0,
        gt=0,
        description="how long a version that stopped sending keeps its detector states, e.g. 30d",
    )
    batch_size: int = Field(
        default=1000, gt=0, le=100_000, description="rows deleted per transaction"
    )
    max_batches: int = Field(
        default=20, gt=0, description="transactions per table and tick; the rest waits"
    )

    @model_validator(mode="after")
    def _reports_outlive_sketches(self) -> RetentionConfig:
        # A window whose report went before its sketches would be evaluated again.
        if self.reports < self.sketches:
            raise ValueError(
                f"reports ({_human(self.reports)}) must be at least sketches "
                f"({_human(self.sketches)}): "
                "a window whose report is gone but whose sketches remain is evaluated again"
            )
        return self


class LateLabelsConfig(Strict):
    """``late_labels``: the leader's batch join of labels later than a model's horizon
    (``models.*.labels.join_ttl``) from the archive, for models whose labels are joined
    and whose events are archived."""

    enabled: bool = True
    interval: Duration = Field(default=300.0, gt=0, description="a period such as 5m")
    max_delay: Duration = Field(
        default=7 * 86400.0,
        gt=0,
        description="the latest a label may come after its prediction and still be joined, "
        "e.g. 7d; at most retention.sketches",
    )
    max_rows: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="label offsets of one partition read per batch (one SQL transaction)",
    )
    deadline: Duration = Field(
        default=60.0, gt=0, description="how long one run may go on joining batches, e.g. 1m"
    )
