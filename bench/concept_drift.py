"""Concept drift: labelled events after an accuracy drop until the default alarm rule fires.

A classifier's predictions go to a 3-partition topic at one event per second
of event time: ``--before`` events at 90 % accuracy, then ``--after`` at 80 %
(a 10-point drop; the features do not change). Every prediction gets a label
0-600 s of event time later, and the labels topic holds them in label-time
order. Both topics are keyed by event_id.

driftwatch's ingestion loop reads both topics as ``driftwatch run`` does
(built by ``service.wiring.monitoring.build_ingest_loop`` from a config, here on a
thread of this process, with a SQLite file): decode, join in SQL, feed the
joined pairs to the default alarm rule per partition, flush transactionally.
Both topics are streamed live: in steps of ``--chunk`` seconds of event time,
each sent once the service has read the previous one, so every label is read
after its prediction and a pair is joined when its label arrives, as in
production. The outcome is read from SQL only: the alarms from
``concept_drift_alarms``, how many pairs were joined from the performance
aggregates, how many the rule was fed from its stored state.

- n: pairs whose prediction is at or after the change point and whose label
  came no later than the label of the first alarm raised by such a pair
  (that pair included);
- k: alarms raised by pairs predicted before the change point (false alarms).

Then the performance reports of the hourly windows are written and their
concept-drift verdicts counted on either side of the change.

Last line: ``concept_drift: detected after <n> labeled events, false_alarms=<k>``
(``detected never`` when no alarm follows the change).
Target: n <= 2000, k = 0. ``--quick`` runs 6,000 events, for the smoke test.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from _common import broker, create_topic
from sqlalchemy import func, select

from consumers.synthetic import SyntheticPlan, SyntheticStream
from db.detectors import AlarmRepository
from db.migrate import upgrade
from db.models import DetectorStateRow, PerformanceAggregate, PerformanceReportRow
from db.session import make_engine, make_session_factory
from service.config import load_config
from service.metrics import Metrics
from service.wiring.monitoring import (
    build_detectors,
    build_ingest_loop,
    build_performance_evaluator,
)
from tests.harness.kafka import TestKafka
from tests.harness.scenario import write_config

RATE = 1.0  # events per second of event time
MAX_DELAY = 600.0  # labels come 0-10 minutes of event time after their prediction
HOUR = 3600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RULE = "rule"  # the default alarm rule's name in detector_states and concept_drift_alarms
Message = tuple[float, bytes, bytes]  # event time, key, value


class Pair(NamedTuple):
    """A prediction's event time and its label's, in whole microseconds (as SQL keeps them)."""

    prediction_us: int
    label_us: int


def _us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def generate(
    plan: SyntheticPlan, count: int, seed: int
) -> tuple[list[Message], list[Message], list[Pair]]:
    """``count`` predictions and their labels, each list in event-time order, and the pairs."""
    rng = random.Random(seed)
    predictions: list[Message] = []
    labels: list[Message] = []
    pairs: list[Pair] = []
    for event in SyntheticStream(plan).events(count):
        predictions.append((event.event_time, event.key, event.prediction))
        body = msgspec.json.decode(event.label)
        # Whole microseconds, so the label time read back from SQL compares exactly.
        delay = rng.uniform(0.0, MAX_DELAY)
        at = EPOCH + timedelta(microseconds=round(1e6 * (event.event_time + delay)))
        body["timestamp"] = at.isoformat().replace("+00:00", "Z")
        labels.append((at.timestamp(), event.key, msgspec.json.encode(body)))
        pairs.append(Pair(round(1e6 * event.event_time), _us(at)))
    labels.sort(key=lambda label: label[0])
    return predictions, labels, pairs


class Service:
    """driftwatch's ingestion loop, built as ``driftwatch run`` builds it, on a thread."""

    def __init__(self, config: Path) -> None:
        cfg = load_config(config, env={})
        assert build_detectors(cfg) is not None, "the alarm rule should watch the model"
        self.loop = build_ingest_loop(cfg, Metrics())
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop.run, args=(self.stop,), daemon=True)
        self.started = time.perf_counter()
        self.thread.start()

    def read(self) -> int:
        """Messages of both topics read so far (the loop's offset book)."""
        book = self.loop.book
        return sum(book.position(tp) or 0 for tp in book.owned())

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.read() < count:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the service read {self.read()} of {count} messages")
            time.sleep(0.005)

    def close(self) -> float:
        """Stop (the loop flushes what it holds); the seconds it ran."""
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the ingestion loop did not stop within 60 s"
        self.loop.dlq.close(timeout=2)
        return time.perf_counter() - self.started


def stream_live(
    kafka: TestKafka,
    topic: str,
    predictions: list[Message],
    labels: list[Message],
    service: Service,
    chunk: float,
) -> None:
    """Send both topics in steps of ``chunk`` seconds of event time, each once the service
    has read the previous one: every label is read after its prediction, as live."""
    producer = kafka.producer(linger_ms=2, acks=1)
    p = q = 0
    until = predictions[0][0]
    while p < len(predictions) or q < len(labels):
        until += chunk
        while p < len(predictions) and predictions[p][0] < until:
            producer.send(topic, key=predictions[p][1], value=predictions[p][2])
            p += 1
        while q < len(labels) and labels[q][0] < until:
            producer.send(f"{topic}-labels", key=labels[q][1], value=labels[q][2])
            q += 1
        producer.flush()
        service.wait_for(p + q)
    producer.close()


def first_detection(pairs: list[Pair], alarms: list[Any], change: float) -> tuple[int, Any] | None:
    """(n, alarm) for the first alarm raised by a pair predicted at or after ``change``;
    n counts such pairs whose label came no later than that alarm's.

    Live, a pair is joined when its label arrives, so "first" and "up to" go by
    label time (a flush of this compressed replay spans far more event time
    than a live one would, so flush order would blur it).
    """
    change_us = round(1e6 * change)
    after = [a for a in alarms if _us(a.prediction_time) >= change_us]
    if not after:
        return None
    first = min(after, key=lambda a: a.label_time)
    cut = _us(first.label_time)
    n = sum(p.prediction_us >= change_us and p.label_us <= cut for p in pairs)
    return n, first


def report_windows(config: Path, url: str, change: float) -> None:
    """Write the windows' performance reports and count their verdicts around the change."""
    cfg = load_config(config, env={})
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    time.sleep(cfg.evaluation.idle_partition_timeout + 0.5)  # the stream has stopped
    build_performance_evaluator(cfg, sessions, None).tick()
    r = PerformanceReportRow
    with sessions() as s:
        rows = s.execute(select(r.window_start, r.window_end, r.degraded, r.concept_drift)).all()
    engine.dispose()
    sides: dict[str, list[int]] = {"before": [0, 0, 0], "holding": [0, 0, 0], "after": [0, 0, 0]}
    for start, end, degraded, drift in rows:
        side = "before" if end.timestamp() <= change else "after"
        side = "holding" if start.timestamp() < change < end.timestamp() else side
        sides[side][0] += 1
        sides[side][1] += bool(degraded)
        sides[side][2] += bool(drift)
    for side, (n, degraded, drift) in sides.items():
        print(
            f"performance reports, windows {side} the change: {n}, degraded {degraded}, "
            f"concept drift {drift}",
            flush=True,
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=int, default=200_000, help="events before the change")
    parser.add_argument("--after", type=int, default=20_000, help="events after the change")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--chunk", type=float, default=120.0, help="seconds of event time sent per live step"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3,000 events before the change and 3,000 after, in 600 s steps (smoke test)",
    )
    args = parser.parse_args()
    if args.quick:
        args.before, args.after, args.chunk = 3000, 3000, 600.0
    return args


def write_bench_config(kafka: TestKafka, workdir: Path, url: str, topic: str) -> Path:
    """The service's config: one classifier with a reference accuracy of 0.9, hourly windows."""
    features = {f"x{i}": {"type": "numerical"} for i in range(4)}
    model = {
        "window": "1h",
        "allowed_lateness": "1m",
        "prediction": {"type": "numerical"},
        "features": features,
        "labels": {
            "task": "classification",
            "join_ttl": "1h",
            "reference": {"accuracy": 0.9, "n": 10_000},
        },
    }
    return write_config(
        workdir / "config.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=url,
        topic=topic,
        group_id=topic,
        flush_events=5000,
        flush_interval="1s",
        models={"clf": model},
        extra={"evaluation": {"backfill": "30d", "idle_partition_timeout": "2s"}},
    )


def stored_outcome(url: str) -> tuple[list[Any], int, int]:
    """The rule's alarms, the pairs joined and the pairs the rule was fed, as SQL holds them."""
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        alarms = [a for a in AlarmRepository(s).rows("clf") if a.detector == RULE]
        pa = PerformanceAggregate
        joined = s.scalar(select(func.sum(pa.labeled)).where(pa.model == "clf"))
        d = DetectorStateRow
        fed = s.scalar(select(func.sum(d.labeled)).where(d.model == "clf", d.detector == RULE))
    engine.dispose()
    return alarms, int(joined or 0), int(fed or 0)


def main() -> None:
    args = parse_args()
    total = args.before + args.after
    # Hour-aligned, far enough back that every label is in the consumer's past.
    start = (time.time() - total / RATE - 2 * HOUR) // HOUR * HOUR
    change = start + args.before / RATE
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'concept_drift.db'}"
        upgrade(make_engine(url))
        topic = f"bench-concept-{int(time.time())}"
        # Dead letters get three partitions too: an external 0.9 broker gives each its default.
        for name in (topic, f"{topic}-labels", f"{topic}-dlq"):
            create_topic(kafka, name, 3)
        config = write_bench_config(kafka, workdir, url, topic)
        plan = SyntheticPlan(
            model=load_config(config, env={}).model_specs()["clf"],
            rate=RATE,
            start=start,
            seed=args.seed,
            accuracy=0.9,
            accuracy_after=0.8,
            concept_drift_at=args.before / RATE,
        )
        predictions, labels, pairs = generate(plan, total, args.seed)
        service = Service(config)
        stream_live(kafka, topic, predictions, labels, service, args.chunk)
        seconds = service.close()
        print(
            f"sent {total} predictions (accuracy 0.9, then 0.8 from event {args.before}) and "
            f"{total} labels 0-{MAX_DELAY:.0f} s later, live",
            flush=True,
        )
        alarms, joined, fed = stored_outcome(url)
        print(
            f"driftwatch ran {seconds:.1f}s ({2 * total / seconds:,.0f} messages/s), "
            f"joined {joined} pairs, the rule was fed {fed}",
            flush=True,
        )
        assert joined == fed == total, "every pair should be joined and fed exactly once"
        for a in alarms:
            print(
                f"alarm: partition {a.partition}, prediction at change "
                f"{a.prediction_time.timestamp() - change:+.0f}s, label at change "
                f"{a.label_time.timestamp() - change:+.0f}s, after {a.labeled} pairs on its "
                f"partition, error rate {a.baseline_rate:.3f} -> {a.alarm_rate:.3f}",
                flush=True,
            )
        report_windows(config, url, change)
        false_alarms = sum(a.prediction_time.timestamp() < change for a in alarms)
        detected = first_detection(pairs, alarms, change)
        shown = "never" if detected is None else f"after {detected[0]}"
        print(f"concept_drift: detected {shown} labeled events, false_alarms={false_alarms}")


if __name__ == "__main__":
    main()
