"""The ``alerts`` section: channels, routes, and how the outbox delivers.

Secrets never sit in the file itself unless the operator insists: each channel's
``secret`` may be given inline, as ``secret_env`` (a variable's name) or as
``secret_file`` (a mounted secret); exactly one of them when the channel needs one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from service.config.base import Duration, Strict

ChannelType = Literal["slack", "pagerduty", "opsgenie", "alertmanager", "webhook", "log"]
SeverityName = Literal["critical", "error", "warning", "info"]

# Which channel types authenticate with a secret (routing key, API key, HMAC key).
NEEDS_SECRET = frozenset({"pagerduty", "opsgenie", "webhook"})
# Which need a URL from the operator (the others default to the vendor's endpoint).
NEEDS_URL = frozenset({"slack", "alertmanager", "webhook"})

# The model name of the alerts a replica raises about itself (its consumer stalled, its
# dead-letter rate): routes select them with ``models: [_service]``; no model may have it.
SERVICE_MODEL = "_service"

DEFAULT_SEVERITY: dict[str, SeverityName] = {
    "data_drift": "warning",
    "performance_degradation": "error",
    "concept_drift": "error",
    "run_failed": "error",
    "run_rejected": "warning",
    "run_accepted": "info",
    "retrain_started": "info",
    "rollout_started": "info",
    "rollout_promoted": "info",
    # A paused rollout holds a canary on live traffic until someone acts; a rollback
    # means a candidate that passed validation failed on live traffic.
    "rollout_paused": "critical",
    "rollout_rolled_back": "critical",
    "consumer_stalled": "critical",
    "dead_letter_rate": "error",
}


class ChannelConfig(Strict):
    type: ChannelType
    url: str | None = None
    secret: str | None = Field(default=None, repr=False)
    secret_env: str | None = None
    secret_file: str | None = None
    timeout: Duration = Field(default=10.0, gt=0)
    rate_limit: int = Field(default=30, ge=1, description="requests per rate_period")
    rate_period: Duration = Field(default=60.0, gt=0)
    deadline: Duration = Field(
        default=15.0,
        gt=0,
        description="the whole of one delivery request (connect to last byte); timeout is "
        "per network operation, so a receiver trickling bytes is cut here",
    )
    concurrency: int = Field(
        default=4, ge=1, le=64, description="deliveries in flight at once on this channel"
    )
    # Alertmanager expects clients to re-send active alerts every 30 s to 3 min.
    resend_interval: Duration = Field(
        default=60.0, gt=0, description="alertmanager: re-send a firing alert this often"
    )

    @model_validator(mode="after")
    def _complete(self) -> ChannelConfig:
        given = [k for k in ("secret", "secret_env", "secret_file") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give one of secret, secret_env, secret_file (got {given})")
        if self.type in NEEDS_SECRET and not given:
            raise ValueError(f"a {self.type} channel needs secret, secret_env or secret_file")
        if self.type in NEEDS_URL and not self.url:
            raise ValueError(f"a {self.type} channel needs url")
        return self

    def resolve_secret(self, where: str) -> str | None:
        """The secret's value, read now; a missing variable or file names the key."""
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            if not value:
                raise ValueError(f"{where}.secret_env: ${self.secret_env} is not set")
            return value
        if self.secret_file:
            try:
                return Path(self.secret_file).read_text().strip()
            except OSError as exc:
                raise ValueError(f"{where}.secret_file: cannot read: {exc}") from exc
        return self.secret


class RouteConfig(Strict):
    """Alerts matching every given filter go to ``channels``; an empty filter matches all."""

    channels: list[str] = Field(min_length=1)
    models: list[str] = []
    kinds: list[str] = []
    min_severity: SeverityName = "info"


class AlertsConfig(Strict):
    enabled: bool = True
    interval: Duration = Field(default=5.0, gt=0, description="how often the outbox is drained")
    max_attempts: int = Field(default=8, ge=1)
    backoff: Duration = Field(default=5.0, gt=0, description="first retry delay, then doubled")
    max_backoff: Duration = Field(default=3600.0, gt=0)
    max_retry_after: Duration = Field(
        default=3600.0,
        gt=0,
        description="a receiver's Retry-After is obeyed up to this long, never longer",
    )
    dead_after: Duration = Field(
        default=86400.0,
        gt=0,
        le=366 * 86400.0,
        description="a delivery still failing this long after it was queued is dead",
    )
    batch: int = Field(default=100, ge=1)
    channels: dict[str, ChannelConfig] = {}
    routes: list[RouteConfig] = []
    severity: dict[str, SeverityName] = Field(
        default_factory=dict, description="a mapping of alert kind to severity"
    )
    stalled_after: Duration = Field(
        default=300.0,
        gt=0,
        description="consumer_stalled: events wait and no offset moved into SQL this long",
    )
    dead_letter_window: Duration = Field(
        default=300.0, gt=0, description="dead_letter_rate: the rolling window measured"
    )
    dead_letter_ratio: float = Field(
        default=0.05, gt=0, lt=1, description="dead_letter_rate: fires above this share"
    )
    dead_letter_min_events: int = Field(
        default=100, ge=1, description="dead_letter_rate: fewer events in the window judge nothing"
    )

    @model_validator(mode="after")
    def _routes_name_channels(self) -> AlertsConfig:
        for i, route in enumerate(self.routes):
            unknown = [c for c in route.channels if c not in self.channels]
            if unknown:
                raise ValueError(
                    f"routes[{i}].channels: {unknown} not in alerts.channels "
                    f"(have {sorted(self.channels)})"
                )
        return self

    def severity_of(self, kind: str) -> SeverityName:
        return self.severity.get(kind) or DEFAULT_SEVERITY.get(kind, "warning")
