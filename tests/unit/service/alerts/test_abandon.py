"""A send abandoned at shutdown is released without counting an attempt, whatever it
ends in and whenever: an ordinary error once its client is closed under it (httpx's
``ReadError``), or nothing at all before the dispatch loop stops. Each ordering is made
by the channel below, not by timing."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertOutbox, DeliveryRepository, DeliveryStatus
from db.session import transaction
from service.alerts.base import Alert, Outcome
from service.alerts.worker import DeliverySettings, Limits, OutboxWorker, Router
from service.config.alerts import AlertsConfig

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WAIT = 60.0  # every wait's deadline: far beyond any healthy step here


class Stubborn:
    """Holds its request open; cancelled, it goes on (as a library that turns a
    cancellation into its own error would) until its client is closed, then fails like
    a cut connection, or, with ``unwinds`` False, never ends at all."""

    name = "stubborn"

    def __init__(self, unwinds: bool) -> None:
        self.unwinds = unwinds
        self.started = threading.Event()
        self.closed = asyncio.Event()

    async def send(self, alert: Alert, now: datetime) -> Outcome:
        self.started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        if not self.unwinds:
            await asyncio.Event().wait()  # still running when the loop stops
        await self.closed.wait()
        return Outcome(False, True, "ReadError: ")

    async def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("unwinds", [True, False], ids=["cut-by-its-client", "outlives-the-loop"])
def test_a_send_abandoned_at_close_is_released_whatever_it_ends_in(
    sessions: sessionmaker[Session], unwinds: bool
) -> None:
    cfg = AlertsConfig.model_validate(
        {"channels": {"stubborn": {"type": "log"}}, "routes": [{"channels": ["stubborn"]}]}
    )
    settings = DeliverySettings(limits={"stubborn": Limits(deadline=600.0)})
    channel = Stubborn(unwinds)
    worker = OutboxWorker(sessions, {"stubborn": channel}, Router(cfg), settings, lambda: NOW)
    with transaction(sessions) as s:
        AlertOutbox(s).add("run-1-failed", "run_failed", "fraud", "run 1 failed", NOW)
    ticking = threading.Thread(target=worker.tick, daemon=True)
    ticking.start()
    assert channel.started.wait(WAIT)
    assert worker.close(grace=0.0) is False
    ticking.join(WAIT)
    assert not ticking.is_alive(), "the pass never got its abandoned send back"
    with transaction(sessions) as s:
        [due] = DeliveryRepository(s).listing()
        row = due.delivery
        assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.PENDING, 0, None)
        assert row.claimed_by is None
