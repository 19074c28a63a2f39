"""Runs ``driftwatch`` as a real process against the harness's broker and database.

Shared by the integration tests, the benchmarks and ``make demo``'s checks, so
that a chaos test and the chaos benchmark exercise the very same scenario.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from consumers.synthetic import SyntheticPlan, SyntheticStream, produce
from db.migrate import upgrade
from db.repositories import WindowAggregateRepository
from db.session import make_engine, make_session_factory
from service.config import Config, load_config
from tests.harness.kafka import TestKafka

REPO = Path(__file__).resolve().parents[2]


def wide_model(
    numerical: int = 16,
    categorical: int = 4,
    window: str = "1m",
    labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A model with many features, like the ones the performance targets speak of.

    ``labels`` is its ``labels`` config (default: none; labels are opt-in).
    """
    features: dict[str, Any] = {}
    for i in range(numerical):
        features[f"num_{i:02d}"] = {"type": "numerical", "nullable": i % 4 == 0}
    for i in range(categorical):
        features[f"cat_{i}"] = {"type": "categorical", "nullable": i == 0}
    model: dict[str, Any] = {
        "window": window,
        "allowed_lateness": "1m",
        "prediction": {"type": "numerical"},
        "features": features,
    }
    if labels is not None:
        model["labels"] = labels
    return model


CLIENT_LOG_LEVELS = {"kafka.coordinator": "INFO", "kafka.cluster": "INFO"}


def write_config(
    path: Path,
    *,
    bootstrap_servers: str,
    api_version: tuple[int, ...] | None,
    database_url: str,
    topic: str,
    group_id: str,
    models: dict[str, Any] | None = None,
    flush_events: int = 5000,
    flush_interval: str = "500ms",
    extra_consumer: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    consumer = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
    consumer.update(extra_consumer or {})
    cfg: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap_servers,
            "group_id": group_id,
            "topics": {
                "predictions": topic,
                "labels": f"{topic}-labels",
                "dead_letter": f"{topic}-dlq",
            },
            "consumer": consumer,
        },
        "database": {"url": database_url},
        "archive": {"uri": str(path.parent / "archive")},
        "ingest": {"flush_events": flush_events, "flush_interval": flush_interval},
        "metrics": {"port": 0},
        "log_level": "INFO",
        # The client's group and metadata events, so that a consumer that stops making
        # progress in a test leaves its state in the service's log.
        "log_levels": dict(CLIENT_LOG_LEVELS),
        # A client that stops fetching (seen twice in the suite, after a broker restart
        # and a fresh broker's first group) is replaced after this, within a test's wait
        # rather than the production default's 5 minutes; the log says so.
        "alerts": {"stalled_after": "30s"},
        "models": models or {"wide": wide_model()},
    }
    cfg.update(extra or {})
    if api_version is not None:
        cfg["kafka"]["api_version"] = ".".join(str(p) for p in api_version)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def create_topics(kafka: TestKafka, name: str, partitions: int = 3) -> None:
    """The predictions topic ``name`` with the labels and dead-letter topics a config names."""
    # The labels topic is keyed like the predictions, with the same partition count.
    kafka.create_topics({name: partitions, f"{name}-labels": partitions, f"{name}-dlq": 1})


@dataclass(frozen=True)
class Ingest:
    """A fresh predictions topic (with its labels and dead-letter topics), a migrated
    SQLite database and the config of the ``wide`` model that ingests one into the
    other, flushing every 200 ms; ``stream`` makes valid events of the model."""

    topic: str
    db: str
    config: Path
    cfg: Config
    stream: SyntheticStream

    def event(self, i: int) -> bytes:
        """The i-th valid prediction event as produced, at the stream's rate."""
        plan = self.stream.plan
        return self.stream.event(i, plan.start + i / plan.rate).prediction


def fresh_ingest(kafka: TestKafka, workdir: Path, prefix: str, partitions: int) -> Ingest:
    topic = f"{prefix}-{time.time_ns()}"
    create_topics(kafka, topic, partitions)
    db = f"sqlite:///{workdir / 'db.sqlite'}"
    upgrade(make_engine(db))
    config = write_config(
        workdir / "c.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=db,
        topic=topic,
        group_id=topic,
        flush_interval="200ms",
    )
    cfg = load_config(config, env={})
    # Event time in the past: the consumer rejects events from its future.
    start = time.time() - 3 * 86400
    plan = SyntheticPlan(model=cfg.model_specs()["wide"], rate=50.0, start=start)
    return Ingest(topic, db, config, cfg, SyntheticStream(plan))


def send_synthetic(
    kafka: TestKafka, config: Path, count: int, *, seed: int = 1, days_ago: float = 3.0
) -> Counter[tuple[str, str, int]]:
    """Produce ``count`` synthetic events per model of a config; return per-window counts."""
    # Event time in the past: the consumer rejects events from its future.
    start = time.time() - days_ago * 86400
    cfg = load_config(config, env={})
    streams = [
        SyntheticStream(SyntheticPlan(model=spec, rate=200.0, start=start, seed=seed + i))
        for i, spec in enumerate(cfg.model_specs().values())
    ]
    producer = kafka.producer()
    try:
        report = produce(producer, streams, count, cfg.kafka.topics.predictions, None)
    finally:
        producer.close()
    return report.windows


class ServiceProcess:
    """``driftwatch run`` in a child process that a test may SIGKILL."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "run", "--config", str(self.config)],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def stored_counts(database_url: str) -> Counter[tuple[str, str, int]]:
    """Events in SQL per (model, version, window start epoch), summed over partitions."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            rows = WindowAggregateRepository(session).window_counts()
    finally:
        engine.dispose()
    return Counter(
        {(r.model, r.model_version, int(r.window_start.timestamp())): r.events for r in rows}
    )


def wait_for_total(database_url: str, expected: int, timeout: float, interval: float = 0.5) -> int:
    """Poll SQL until ``expected`` events are stored (or more, or time runs out)."""
    return wait_for_count(
        lambda: sum(stored_counts(database_url).values()), expected, timeout, interval
    )


def wait_for_count(
    read: Callable[[], int], expected: int, timeout: float, interval: float = 0.5
) -> int:
    """Call ``read`` until it returns at least ``expected`` or time runs out; its last value."""
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        total = read()
        if total >= expected:
            return total
        time.sleep(interval)
    return total


K = TypeVar("K", bound=Hashable)


def compare(sent: Counter[K], stored: Counter[K]) -> tuple[int, int]:
    """(lost, duplicated): what ``stored`` lacks of ``sent`` and holds beyond it, key by key."""
    lost = dup = 0
    for key in sent.keys() | stored.keys():
        diff = stored.get(key, 0) - sent.get(key, 0)
        if diff > 0:
            dup += diff
        else:
            lost -= diff
    return lost, dup
