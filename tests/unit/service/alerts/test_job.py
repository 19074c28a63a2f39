"""The ``alerts`` job as ``driftwatch run`` schedules it: wiring, metrics, start-up errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from db.session import transaction
from service.alerts.conditions import DATA_DRIFT, condition
from service.config import Config
from service.errors import ServiceError
from service.metrics import Metrics
from service.wiring.jobs import alerts_tick
from tests.harness.receivers import receiver

BASE: dict[str, Any] = {
    "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
    "models": {"fraud": {"window": "1m", "features": {"amount": {"type": "numerical"}}}},
}


def config(alerts: dict[str, Any]) -> Config:
    return Config.model_validate({**BASE, "alerts": alerts})


def test_the_job_delivers_and_exports_its_metrics(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        condition(s, "fraud", DATA_DRIFT, True, "r1", "drift", datetime.now(UTC), {})
    metrics = Metrics(CollectorRegistry())
    closers: list[Any] = []
    with receiver("webhook", secret="k") as rx:
        cfg = config(
            {
                "channels": {"hook": {"type": "webhook", "url": rx.url, "secret": "k"}},
                "routes": [{"channels": ["hook"]}],
            }
        )
        tick = alerts_tick(cfg, sessions, metrics, closers)
        tick()
        for close in closers:
            close()
    assert len(rx.accepted) == 1
    value = metrics.registry.get_sample_value
    assert value("driftwatch_alerts_sent_total", {"channel": "hook"}) == 1
    labels = {"channel": "hook", "status": "delivered"}
    assert value("driftwatch_alert_outbox_deliveries", labels) == 1


def test_a_channel_whose_secret_is_missing_stops_the_start(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_PD_KEY", raising=False)
    cfg = config({"channels": {"pd": {"type": "pagerduty", "secret_env": "NO_SUCH_PD_KEY"}}})
    with pytest.raises(ServiceError, match=r"alerts\.channels\.pd\.secret_env"):
        alerts_tick(cfg, sessions, Metrics(CollectorRegistry()), [])
