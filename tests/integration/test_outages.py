"""The world misbehaves mid-stream: the broker restarts, the database goes away."""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.harness.kafka import TestKafka
from tests.harness.scenario import (
    compare,
    create_topics,
    send_synthetic,
    stored_counts,
    wait_for_total,
    write_config,
)
from tests.harness.tcpproxy import TcpProxy

pytestmark = pytest.mark.kafka
SLOW = {"max_poll_records": 100}


@pytest.fixture(scope="module")
def restartable(kafka: TestKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestKafka]:
    """The session's broker if the harness started it, else a local one of this module's.

    A test cannot restart an external broker (``KAFKA_BOOTSTRAP_SERVERS``), so
    under one the restart test runs on its own local broker instead of being
    skipped; if that cannot start, the test errors with the reason.
    """
    if kafka.local is not None:
        yield kafka
        return
    own = TestKafka(tmp_path_factory.mktemp("restartable-kafka"), local_only=True)
    try:
        yield own
    finally:
        own.close()


def test_broker_restart_during_consumption_loses_nothing(
    restartable: TestKafka, sqlite_url: str, tmp_path: Path, services: Any
) -> None:
    kafka = restartable
    assert kafka.local is not None
    topic = f"restart-{os.getpid()}-{time.time_ns()}"
    create_topics(kafka, topic)
    config = write_config(
        tmp_path / "config.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=sqlite_url,
        topic=topic,
        group_id=f"group-{topic}",
        flush_interval="200ms",
        extra_consumer=SLOW,
    )
    sent = send_synthetic(kafka, config, 20_000, seed=3)
    svc = services(config)
    wait_for_total(sqlite_url, 2000, timeout=60, interval=0.05)

    kafka.local.stop_broker()
    time.sleep(3)  # the service keeps running without a broker meanwhile
    kafka.local.start_broker()
    after = send_synthetic(kafka, config, 2000, seed=4, days_ago=2.0)

    total = wait_for_total(sqlite_url, 22_000, timeout=180)
    assert svc.terminate() == 0, svc.log_text()[-3000:]
    assert total == 22_000
    assert compare(sent + after, stored_counts(sqlite_url)) == (0, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    m = re.search(r"^driftwatch_healthy (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


def _wait_health(port: int, value: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _healthy(port) == value:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.postgres
def test_database_outage_is_retried_and_loses_nothing(
    pg_url, make_config, send, services, tmp_path
):
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    metrics_port = _free_port()
    config = make_config(proxied, flush_interval="200ms", extra_consumer=SLOW)
    text = config.read_text().replace("port: 0", f"port: {metrics_port}")
    config.write_text(text.replace("host: 0.0.0.0", "host: 127.0.0.1"))
    try:
        first = send(config, 5000, seed=5)
        svc = services(config)
        wait_for_total(pg_url, 500, timeout=60, interval=0.05)
        assert _wait_health(metrics_port, 1.0, timeout=10)

        proxy.cut()
        outage_started = time.monotonic()
        during = send(config, 3000, seed=6, days_ago=2.0)
        assert _wait_health(metrics_port, 0.0, timeout=15), "unhealthy while the db is away"
        time.sleep(max(0.0, 20 - (time.monotonic() - outage_started)))
        assert svc.alive()
        proxy.restore()

        total = wait_for_total(pg_url, 8000, timeout=120)
        assert _wait_health(metrics_port, 1.0, timeout=30)
        assert svc.terminate() == 0
    finally:
        proxy.close()
    log = svc.log_text()
    assert "flush failed, retrying" in log or "cannot read stored offsets" in log
    assert total == 8000
    assert compare(first + during, stored_counts(pg_url)) == (0, 0)
