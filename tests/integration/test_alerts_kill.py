"""A SIGKILL of the service while a drift alert is being delivered loses nothing and
duplicates nothing: after the restart the receiver accepts it exactly once.

The delivery runs as a real process (the service's ``alerts`` scheduler tick, as
``driftwatch run`` wires it), against PostgreSQL and a local PagerDuty receiver
that holds the first call open until the process is dead. The dead process's claim
on the delivery keeps any other worker from sending it meanwhile; once the claim
has ended, the restarted service sends it, once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.outbox import DeliveryRepository, DeliveryStatus
from db.session import make_engine, make_session_factory, transaction
from service.alerts.conditions import DATA_DRIFT, condition
from tests.harness.receivers import receiver

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[2]


def write_config(path: Path, database_url: str, pagerduty_url: str) -> Path:
    cfg: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"], "group_id": "g"},
        "database": {"url": database_url},
        "metrics": {"port": 0},
        "models": {"fraud": {"window": "1m", "features": {"amount": {"type": "numerical"}}}},
        "alerts": {
            "interval": "50ms",
            # A deadline far beyond the test: the first call ends only by the SIGKILL.
            "channels": {
                "pd": {
                    "type": "pagerduty",
                    "url": pagerduty_url,
                    "secret_env": "PD_KEY",
                    "deadline": "10m",
                }
            },
            "routes": [{"channels": ["pd"]}],
        },
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


class Service:
    """The alert job of the service in its own process; prints one line per tick."""

    def __init__(self, config: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PD_KEY": "pd-secret"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.test_alerts_kill", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ticks(self, n: int) -> None:
        assert self.proc.stdout is not None
        for _ in range(n):
            line = self.proc.stdout.readline()
            assert line.startswith("tick"), f"the service exited: {line!r}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.kill()


def delivery(database_url: str, end_claim: bool = False) -> tuple[str, int, bool]:
    """Status, attempts, and whether a live claim holds it; ``end_claim`` moves the claim's
    end into the past, as the passing of its time would (the killed holder never returns)."""
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as s:
            [due] = DeliveryRepository(s).listing()
            row, now = due.delivery, datetime.now(UTC)
            claimed = row.claimed_until is not None and row.claimed_until > now
            if end_claim and row.claimed_until is not None:
                row.claimed_until = now - timedelta(seconds=1)
            return row.status, row.attempts, claimed
    finally:
        engine.dispose()


def test_a_sigkill_mid_delivery_is_delivered_once_after_the_restart(
    pg_url: str, tmp_path: Path, services: list[Service]
) -> None:
    engine = make_engine(pg_url)
    with transaction(make_session_factory(engine)) as s:
        condition(s, "fraud", DATA_DRIFT, True, "report-1", "dataset drift", datetime.now(UTC), {})
    engine.dispose()
    with receiver("pagerduty", secret="pd-secret") as rx:
        rx.hang_up = 1
        config = write_config(tmp_path / "config.yaml", pg_url, rx.url + "/v2/enqueue")
        services.append(Service(config))
        assert rx.wait_received(1), "the first service never called the receiver"
        services[0].kill()
        rx.release.set()
        assert rx.accepted == []
        # Claimed by the dead process: no other worker sends it until the claim ends.
        assert delivery(pg_url, end_claim=True) == (DeliveryStatus.PENDING, 0, True)

        services.append(Service(config))
        services[1].ticks(1)
        assert rx.wait_received(2)
        services[1].ticks(5)
        services[1].kill()
    assert delivery(pg_url) == (DeliveryStatus.DELIVERED, 1, False)
    assert len(rx.received) == 2
    [accepted] = rx.accepted
    assert accepted.json["event_action"] == "trigger"
    assert accepted.json["dedup_key"] == "fraud/data_drift"


def main(config: str) -> None:
    from db.session import make_engine, make_session_factory
    from service.config import load_config
    from service.leader import AlwaysLeader
    from service.metrics import Metrics, SchedulerMetrics
    from service.scheduler import JobRunner
    from service.wiring.jobs import alerts_tick

    cfg = load_config(config)
    sessions = make_session_factory(make_engine(cfg.database.url))
    metrics = Metrics()
    runner = JobRunner(AlwaysLeader(), SchedulerMetrics(metrics.registry))
    tick = runner.job("alerts", alerts_tick(cfg, sessions, metrics, []))
    n = 0
    while True:
        tick()
        n += 1
        print(f"tick {n}", flush=True)
        time.sleep(cfg.alerts.interval)


if __name__ == "__main__":
    main(sys.argv[1])
