"""Whatever a channel does, it is that delivery's failed attempt and nothing more."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertOutbox, DeliveryRepository, DeliveryStatus
from db.session import transaction
from service.alerts.base import Alert, Outcome
from service.alerts.log import LogChannel
from service.alerts.worker import DeliverySettings, Limits, OutboxWorker, Router
from service.config.alerts import AlertsConfig

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Raising:
    name = "boom"

    async def send(self, alert: Alert, now: datetime) -> Outcome:
        raise RuntimeError(f"bug while sending {alert.dedup_key}")

    async def close(self) -> None:
        pass


class Hanging:
    name = "hang"

    async def send(self, alert: Alert, now: datetime) -> Outcome:
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    async def close(self) -> None:
        pass


def test_a_raising_or_hanging_channel_fails_only_its_own_delivery(
    sessions: sessionmaker[Session],
) -> None:
    names = ("boom", "hang", "ok")
    cfg = AlertsConfig.model_validate(
        {"channels": {n: {"type": "log"} for n in names}, "routes": [{"channels": list(names)}]}
    )
    settings = DeliverySettings(max_attempts=2, limits={"hang": Limits(deadline=0.2)})
    channels = {"boom": Raising(), "hang": Hanging(), "ok": LogChannel("ok")}
    worker = OutboxWorker(sessions, channels, Router(cfg), settings, lambda: NOW)
    with transaction(sessions) as s:
        AlertOutbox(s).add("run-1-failed", "run_failed", "fraud", "run 1 failed", NOW)
    assert worker.tick() == 1
    assert worker.close()
    with transaction(sessions) as s:
        found = {d.delivery.channel: d.delivery for d in DeliveryRepository(s).listing()}
    assert found["ok"].status == DeliveryStatus.DELIVERED
    boom, hang = found["boom"], found["hang"]
    assert (boom.status, boom.attempts) == (DeliveryStatus.PENDING, 1)
    assert boom.last_error == "RuntimeError: bug while sending fraud/run_failed"
    assert (hang.status, hang.attempts) == (DeliveryStatus.PENDING, 1)
    assert hang.last_error == "no complete answer within the 0.2 s deadline"
    assert boom.claimed_by is None and hang.claimed_by is None
