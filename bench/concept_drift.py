"""Concept drift: labelled events after an accuracy drop until the default alarm rule fires.

A classifier's predictions go to a 3-partition topic at one event per second
of event time: ``--before`` events at 90 % accuracy, then ``--after`` at 80 %
(a 10-point drop; the features do not change). Every prediction gets a label
0-600 s of event time later, and the labels topic holds them in label-time
order. Both topics are keyed by event_id.

driftwatch's ingestion loop reads both topics as ``driftwatch run`` does
(built by ``service.runner.build_ingest_loop`` from a config, here on a
thread of this process, with a SQLite file): decode, join in SQL, feed the
joined pairs to the default alarm rule per partition, flush transactionally.
By default the topics are streamed live: in steps of ``--chunk`` seconds of
event time, each sent once the service has read the previous one, so every
label is read after its prediction, as in production. ``--backlog`` loads
both topics first (Kafka's console producer when the broker is local) and
lets the service read them as fast as it can, which joins in an order closer
to the predictions'. A thin wrapper around the loop's join observer records
the order in which pairs were joined; the alarms are read from SQL.

- n: joined pairs whose prediction is at or after the change point and that
  were joined before (or are) the first alarm raised by such a pair;
- k: alarms raised by pairs predicted before the change point (false alarms).

Then the performance reports of the hourly windows are written and their
concept-drift verdicts counted on either side of the change.

Last line: ``concept_drift: detected after <n> labeled events, false_alarms=<k>``.
Target: n <= 2000, k = 0.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from _common import broker, create_topic
from sqlalchemy import func, select

from consumers.join import JoinedPair, PartitionObserver
from consumers.synthetic import SyntheticPlan, SyntheticStream
from db.detectors import Alarm, AlarmRepository
from db.migrate import upgrade
from db.models import DetectorStateRow, PerformanceReportRow
from db.session import make_engine, make_session_factory
from service.config import load_config
from service.metrics import Metrics
from service.runner import build_ingest_loop, build_performance_evaluator
from tests.harness.kafka import TestKafka
from tests.harness.scenario import write_config

RATE = 1.0  # events per second of event time
MAX_DELAY = 600.0  # labels come 0-10 minutes of event time after their prediction
HOUR = 3600
Message = tuple[float, bytes, bytes]  # event time, key, value


@dataclass
class JoinLog:
    """(prediction, label) event times of the joined pairs, per flush and partition,
    in join order."""

    flushes: list[dict[int, list[tuple[float, float]]]] = field(default_factory=list)

    def label_order_kept(self) -> bool:
        """Whether every partition joined its pairs in label-time order."""
        last: dict[int, float] = {}
        for flush in self.flushes:
            for p, pairs in flush.items():
                for _, label_time in pairs:
                    if label_time < last.get(p, label_time):
                        return False
                    last[p] = label_time
        return True


class Recording:
    """The loop's join observer, with the join order written down."""

    def __init__(self, inner: PartitionObserver, log: JoinLog) -> None:
        self.inner, self.log = inner, log

    def joined(self, session: Any, pairs: Mapping[int, Sequence[JoinedPair]]) -> list[Alarm]:
        alarms = self.inner.joined(session, pairs)
        self.log.flushes.append(
            {
                p: [(pair.prediction.event_time, pair.label_time) for pair in joined]
                for p, joined in pairs.items()
            }
        )
        return alarms


def generate(plan: SyntheticPlan, count: int, seed: int) -> tuple[list[Message], list[Message]]:
    """``count`` predictions and their labels, each list in event-time order."""
    rng = random.Random(seed)
    predictions: list[Message] = []
    labels: list[Message] = []
    for event in SyntheticStream(plan).events(count):
        predictions.append((event.event_time, event.key, event.prediction))
        body = msgspec.json.decode(event.label)
        at = event.event_time + rng.uniform(0.0, MAX_DELAY)
        body["timestamp"] = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
        labels.append((at, event.key, msgspec.json.encode(body)))
    labels.sort(key=lambda label: label[0])
    return predictions, labels


def load_backlog(
    kafka: TestKafka, topic: str, predictions: list[Message], labels: list[Message], tmp: Path
) -> None:
    """Both topics whole, before the service starts."""
    for name, messages in ((topic, predictions), (f"{topic}-labels", labels)):
        if kafka.local is None:
            producer = kafka.producer(batch_size=256 * 1024, linger_ms=20)
            for _, key, value in messages:
                producer.send(name, key=key, value=value)
            producer.flush()
            producer.close()
            continue
        path = tmp / f"{name}.txt"
        with open(path, "wb") as out:
            out.writelines(b"%s\t%s\n" % (key, value) for _, key, value in messages)
        kafka.local.produce_file(name, path)
        path.unlink()


class Service:
    """driftwatch's ingestion loop, built as ``driftwatch run`` builds it, on a thread."""

    def __init__(self, config: Path, log: JoinLog) -> None:
        self.loop = build_ingest_loop(load_config(config, env={}), Metrics())
        assert self.loop.join_observer is not None, "the alarm rule should watch the model"
        self.loop.join_observer = Recording(self.loop.join_observer, log)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop.run, args=(self.stop,), daemon=True)
        self.started = time.perf_counter()
        self.thread.start()

    def read(self) -> int:
        """Messages of both topics read so far."""
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


def first_detection(
    log: JoinLog, alarms: list[Any], change: float, live: bool
) -> tuple[int, Any] | None:
    """(n, alarm) for the first alarm raised by a pair predicted at or after ``change``;
    n counts such pairs joined up to and including that one.

    Live, a pair is joined when its label arrives, so "first" and "up to" go by label
    time (a flush of this compressed replay spans far more event time than a live one
    would). From a backlog they go by the recorded join order: flush, then partition.
    """
    after = [a for a in alarms if a.prediction_time.timestamp() >= change]
    if not after:
        return None
    if live:
        first = min(after, key=lambda a: a.label_time)
        cut = first.label_time.timestamp()
        n = sum(
            t >= change and at <= cut
            for flush in log.flushes
            for pairs in flush.values()
            for t, at in pairs
        )
        return n, first
    position: dict[tuple[int, int], tuple[int, int]] = {}  # (partition, labeled) -> flush, i
    fed: dict[int, int] = {}
    for f, flush in enumerate(log.flushes):
        for p, pairs in flush.items():
            for i in range(len(pairs)):
                position[(p, fed.get(p, 0) + i + 1)] = (f, i)
            fed[p] = fed.get(p, 0) + len(pairs)
    first = min(after, key=lambda a: (*position[(a.partition, a.labeled)], a.partition))
    at_flush, at_index = position[(first.partition, first.labeled)]
    n = 0
    for f, flush in enumerate(log.flushes[: at_flush + 1]):
        for p, pairs in sorted(flush.items()):
            if f == at_flush and p > first.partition:
                continue
            upto = at_index + 1 if f == at_flush and p == first.partition else len(pairs)
            n += sum(t >= change for t, _ in pairs[:upto])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=int, default=200_000, help="events before the change")
    parser.add_argument("--after", type=int, default=20_000, help="events after the change")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--chunk", type=float, default=120.0, help="seconds of event time sent per live step"
    )
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="load both topics before the service starts instead of streaming them live",
    )
    args = parser.parse_args()
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
        config = write_config(
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
        plan = SyntheticPlan(
            model=load_config(config, env={}).model_specs()["clf"],
            rate=RATE,
            start=start,
            seed=args.seed,
            accuracy=0.9,
            accuracy_after=0.8,
            concept_drift_at=args.before / RATE,
        )
        predictions, labels = generate(plan, total, args.seed)
        log = JoinLog()
        began = time.perf_counter()
        if args.backlog:
            load_backlog(kafka, topic, predictions, labels, workdir)
            print(f"loaded both topics in {time.perf_counter() - began:.1f}s", flush=True)
            service = Service(config, log)
            service.wait_for(2 * total, timeout=900)
        else:
            service = Service(config, log)
            stream_live(kafka, topic, predictions, labels, service, args.chunk)
        seconds = service.close()
        how = "as a backlog" if args.backlog else "live"
        print(
            f"sent {total} predictions (accuracy 0.9, then 0.8 from event {args.before}) and "
            f"{total} labels 0-{MAX_DELAY:.0f} s later, {how}",
            flush=True,
        )
        joined = sum(len(times) for flush in log.flushes for times in flush.values())
        engine = make_engine(url)
        with make_session_factory(engine)() as s:
            alarms = [a for a in AlarmRepository(s).rows("clf") if a.detector == "rule"]
            fed = s.scalar(select(func.sum(DetectorStateRow.labeled)))
        engine.dispose()
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
        if not args.backlog:
            kept = log.label_order_kept()
            print(f"every partition joined its pairs in label-time order: {kept}", flush=True)
        detected = first_detection(log, alarms, change, live=not args.backlog)
        shown = "never" if detected is None else f"after {detected[0]}"
        print(f"concept_drift: detected {shown} labeled events, false_alarms={false_alarms}")


if __name__ == "__main__":
    main()
