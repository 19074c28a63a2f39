"""kill -9, restart: every drift and performance report counts what SQL finally holds.

A report is written once per window and never revised, so a window judged
before it is final keeps wrong counts for good. The premise of the restart is
built, not timed:

- the first process runs with an idle timeout of an hour, so it judges only
  windows whose events and labels it has all read (the rest of the stream is
  not produced yet), and is SIGKILLed once SQL holds what was produced;
- the rest of the stream is produced while no process runs: at the restart,
  predictions and labels of windows already in SQL wait in the topics;
- the second process starts only once every partition's last flush in SQL is
  older than its idle timeout (two seconds): by SQL alone every window would
  count as closed, as it did before windows waited for the consumer's progress.

Two labelled models share the topics. The kill splits a window's predictions;
labels of the first quarter on come only after the kill, so the windows that
a premature judgement would get wrong have their predictions (or some) in SQL
and their labels (or some) in the topics.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from consumers.synthetic import SyntheticPlan, SyntheticStream, write_reference_csv
from db.models import (
    ConsumerOffset,
    DriftReportRow,
    PerformanceAggregate,
    PerformanceReportRow,
    WindowAggregate,
)
from db.session import make_engine, make_session_factory
from service.config import load_config
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wait_for_count, wide_model

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

WINDOW = 10
RATE = 100.0
EVENTS = 6000  # per model: six windows
IDLE = 2.0
Key = tuple[str, str, int]


def _model() -> dict[str, Any]:
    return {
        **wide_model(numerical=4, categorical=1, window=f"{WINDOW}s"),
        "allowed_lateness": "0s",
        # A TTL far beyond the test's event times: no prediction expires unlabelled
        # however far the labels' backlog trails the predictions'.
        "labels": {"task": "classification", "join_ttl": "1h", "min_labeled": 50},
    }


def _query(url: str, read: Callable[[Any], Any]) -> Any:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return read(session)
    finally:
        engine.dispose()


def _sums(url: str, table: Any, *columns: Any) -> dict[Key, tuple[int, ...]]:
    """``columns`` of ``table`` summed per window of a model version (over partitions)."""
    stmt = select(
        table.model, table.model_version, table.window_start, *(func.sum(c) for c in columns)
    ).group_by(table.model, table.model_version, table.window_start)
    rows = _query(url, lambda s: s.execute(stmt).all())
    return {(m, v, int(w.timestamp())): tuple(int(x) for x in xs) for m, v, w, *xs in rows}


def _total(url: str, column: Any) -> int:
    return sum(n for (n,) in _sums(url, PerformanceAggregate, column).values())


def _send(
    kafka: TestKafka,
    topic: str,
    streams: list[SyntheticStream],
    predictions: range,
    labels: range,
    labelled: dict[str, list[bool]],
) -> None:
    """Predictions ``predictions`` of every stream, then labels ``labels`` of those labelled.

    The streams are interleaved event by event: a partition's watermark is the
    latest event time of any model, so one model sent after another would be late.
    """
    producer = kafka.producer()
    try:
        for i in predictions:
            for stream in streams:
                ev = stream.event(i, stream.plan.start + i / stream.plan.rate)
                producer.send(topic, key=ev.key, value=ev.prediction)
        for i in labels:
            for stream in streams:
                if labelled[stream.plan.model.name][i]:
                    ev = stream.event(i, stream.plan.start + i / stream.plan.rate)
                    producer.send(f"{topic}-labels", key=ev.key, value=ev.label)
        producer.flush()
    finally:
        producer.close()


def _driftwatch(config: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _last_flush_age(url: str) -> float:
    newest = _query(url, lambda s: s.scalar(select(func.max(ConsumerOffset.updated_at))))
    return time.time() - float(newest.replace(tzinfo=UTC).timestamp())


def test_reports_after_a_restart_count_what_sql_finally_holds(
    kafka: TestKafka, pg_url: str, make_config, services, tmp_path: Path
) -> None:
    # A long session keeps the dead member in the group, so the second process waits
    # a while for its partitions with every window closed by SQL's idleness alone:
    # a longer stretch for a judgement that ignores the consumer to show (not a
    # premise of passing; the premises above are built).
    common: dict[str, Any] = {
        "models": {"a": _model(), "b": _model()},
        "flush_interval": "200ms",
        "extra_consumer": {"session_timeout_ms": 15000, "heartbeat_interval_ms": 1000},
    }
    never_idle = {"interval": "500ms", "idle_partition_timeout": "1h"}
    first_config = make_config(pg_url, **common, extra={"evaluation": never_idle})
    idle = {"interval": "500ms", "idle_partition_timeout": f"{IDLE}s"}
    config = make_config(pg_url, **common, extra={"evaluation": idle})
    cfg = load_config(config, env={})
    start = (time.time() - 2 * 86400) // WINDOW * WINDOW
    streams = []
    for seed, (name, spec) in enumerate(cfg.model_specs().items(), start=3):
        reference = tmp_path / f"{name}.csv"
        write_reference_csv(SyntheticPlan(spec, seed=seed, draw_seed=99), 2000, reference)
        _driftwatch(config, "reference", "build", "--model", name, str(reference), "--quiet")
        streams.append(SyntheticStream(SyntheticPlan(spec, rate=RATE, start=start, seed=seed)))
    rng = random.Random(5)
    labelled = {s.plan.model.name: [rng.random() < 0.9 for _ in range(EVENTS)] for s in streams}
    labels = sum(sum(flags) for flags in labelled.values())
    topic = cfg.kafka.topics.predictions
    # Mid-window: the kill splits a window, half its predictions in SQL, half pending.
    split, quarter = EVENTS // 2 - 500, EVENTS // 4

    _send(kafka, topic, streams, range(split), range(quarter), labelled)
    first = services(first_config)

    def predicted() -> int:
        return _total(pg_url, PerformanceAggregate.predicted)

    assert wait_for_count(predicted, 2 * split, timeout=120) == 2 * split, first.log_text()
    first.kill()

    # Produced while no process runs: pending in the topics at the restart.
    _send(kafka, topic, streams, range(split, EVENTS), range(quarter, EVENTS), labelled)
    deadline = time.monotonic() + 60
    while _last_flush_age(pg_url) <= IDLE:  # until every partition is idle past the timeout
        assert time.monotonic() < deadline
        time.sleep(0.2)
    second = services(config)

    def joined() -> int:
        return _total(pg_url, PerformanceAggregate.labeled)

    assert wait_for_count(joined, labels, timeout=180) == labels, second.log_text()
    assert wait_for_count(predicted, 2 * EVENTS, timeout=60) == 2 * EVENTS
    windows = 2 * EVENTS // int(WINDOW * RATE)

    def reported() -> int:
        tables = (
            (DriftReportRow, DriftReportRow.events),
            (PerformanceReportRow, PerformanceReportRow.labeled),
        )
        return min(len(_sums(pg_url, t, c)) for t, c in tables)

    assert wait_for_count(reported, windows, timeout=120) == windows, second.log_text()
    assert second.terminate(timeout=60) == 0  # a deadline only: a loaded machine is slow to stop

    w, d = WindowAggregate, DriftReportRow
    events = _sums(pg_url, w, w.event_count)
    assert _sums(pg_url, d, d.events) == events
    assert sum(n for (n,) in events.values()) == 2 * EVENTS
    p, r = PerformanceAggregate, PerformanceReportRow
    final = _sums(pg_url, p, p.predicted, p.labeled, p.unlabeled)
    assert _sums(pg_url, r, r.predicted, r.labeled, r.unlabeled) == final
    assert len(final) == windows
