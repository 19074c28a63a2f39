"""Flush spacing with many models: what the ingestion loop pays per event when its flushes
are due by time and each one rewrites every active window row.

A flush costs per window row it touches (each row is read, merged and written back
with the events it got since the last flush), however few events each row got. With
many models a flush touches hundreds of rows and can take about as long as
``ingest.flush_interval``; flushing again as soon as the interval allowed left the loop
doing little else, and each event carried a large share of a flush. The loop now waits
at least ``d / ingest.max_flush_share`` after a flush of ``d`` seconds (0.25: flushes
take at most a quarter of its time).

A backlog of ``--models`` models x 3 versions x 30 features (the scale bench's
models and events) is read to its end by the service's ingestion loop, built by its
own wiring (archive on, SQLite), with ``flush_interval`` 2 s and ``flush_events`` out
of reach, so that only time triggers flushes: back to back (``max_flush_share`` 1.0,
a flush due as soon as the last one ended, which is what the loop did before) and
spaced (0.25, the default). Each round runs both, each in a fresh process with its
own consumer group and database, one after the other on the same topic; the ratios
printed last are the medians of the rounds' ratios. The figures are the loop
process's CPU from its first record to its last per event read, its read rate, and
its flushes.

Last line: ``flush_spacing: <n> models, <events> events: back to back <us> us
CPU/event, <n> flushes, <rate> events/s; spaced <us> us CPU/event, <n> flushes,
<rate> events/s; CPU per event <ratio> of back to back, read rate <ratio>x``.
``--quick`` runs 4 models of 8 features, one round (the smoke test; its figures mean
nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _common import Progress, broker, broker_env
from scale_models import VERSIONS, Feed, Size, build_service, model_names

from service.config import load_config
from service.process import settle_heap
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wide_model, write_config

BACK_TO_BACK, SPACED = 1.0, 0.25


@dataclass(frozen=True, slots=True)
class Side:
    """One side's read of the backlog."""

    cpu_seconds: float
    seconds: float
    flushes: int
    flush_mean: float

    def cpu_us(self, events: int) -> float:
        return self.cpu_seconds / events * 1e6

    def rate(self, events: int) -> float:
        return events / max(self.seconds, 1e-6)


class Flushes(Progress):
    """Counts the reads toward the backlog's size and keeps each flush's duration."""

    def __init__(self, target: int, done: threading.Event) -> None:
        super().__init__(target, done)
        self.seconds: list[float] = []

    def flushed(self, seconds: float, events: int) -> None:
        self.seconds.append(seconds)


def config_for(size: Size, kafka: TestKafka, workdir: Path, topic: str, share: float) -> Path:
    model = wide_model(size.numerical, size.categorical, window="1m")
    return write_config(
        workdir / "config.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=f"sqlite:///{workdir / 'bench.db'}",
        topic=topic,
        group_id=f"bench-{workdir.name}",
        models={name: model for name in model_names(size.models)},
        # kafka-python sends a 0.9 broker no heartbeat while a flush runs: the broker's
        # largest session timeout keeps a long flush from costing the group membership.
        extra_consumer={"session_timeout_ms": 30000, "heartbeat_interval_ms": 3000},
        extra={
            "log_level": "WARNING",
            "ingest": {
                "flush_events": 100_000_000,  # only time triggers a flush
                "flush_interval": "2s",
                "max_flush_share": share,
            },
        },
    )


def measure(config: Path, events: int) -> Side:
    """In a fresh process: read the backlog as ``driftwatch run`` does."""
    built = build_service(config, config.parent)
    loop = built.loop
    stop = threading.Event()
    loop.stats = flushes = Flushes(events, stop)
    settle_heap()
    loop.run(stop)
    assert flushes.first is not None, "the loop read nothing"
    seconds = time.perf_counter() - flushes.first
    cpu = time.process_time() - flushes.first_cpu
    loop.dlq.close(timeout=2)
    built.engine.dispose()
    mean = statistics.fmean(flushes.seconds) if flushes.seconds else 0.0
    return Side(cpu, seconds, len(flushes.seconds), mean)


def in_child(kafka: TestKafka, config: Path, events: int) -> Side:
    argv = [sys.executable, __file__, "--measure", str(config), "--events", str(events)]
    done = subprocess.run(argv, env=broker_env(kafka), capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise RuntimeError(f"{config.parent.name} failed:\n{done.stderr[-4000:]}")
    return Side(**json.loads(lines[-1]))


def describe(side: Side, events: int) -> str:
    return (
        f"{side.cpu_us(events):.0f} us CPU/event, {side.flushes} flushes, "
        f"{side.rate(events):.0f} events/s"
    )


def median_side(sides: list[Side]) -> Side:
    """Each figure's median over the rounds."""
    return Side(
        statistics.median(s.cpu_seconds for s in sides),
        statistics.median(s.seconds for s in sides),
        round(statistics.median(s.flushes for s in sides)),
        statistics.median(s.flush_mean for s in sides),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--events-per-window", type=int, default=50, help="per model version")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 models, one round (smoke test)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(asdict(measure(args.measure, args.events))))
        return
    features = {"numerical": 22, "categorical": 8}
    if args.quick:
        args.models, args.events_per_window, args.rounds = 4, 10, 1
        features = {"numerical": 6, "categorical": 2}
    # Three closed windows and the two after them; one slice per window, all produced.
    size = Size(args.models, VERSIONS, args.events_per_window, 3, 1, **features)
    size.check()
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        topic = f"bench-flush-spacing-{time.time_ns()}"
        first = Path(tmp) / "feed"
        first.mkdir()
        feed = Feed(kafka, load_config(config_for(size, kafka, first, topic, SPACED)), size, topic)
        while feed.sent < len(feed.slices):
            feed.send_next()
        print(f"{size.models} models: a backlog of {size.events:,} events", flush=True)
        rounds: list[tuple[Side, Side]] = []
        for r in range(args.rounds):
            sides = []
            for name, share in (("back-to-back", BACK_TO_BACK), ("spaced", SPACED)):
                here = Path(tmp) / f"{name}-{r}"
                here.mkdir()
                sides.append(
                    in_child(kafka, config_for(size, kafka, here, topic, share), size.events)
                )
            before, after = sides
            rounds.append((before, after))
            print(
                f"round {r + 1}: back to back {describe(before, size.events)}, "
                f"mean flush {before.flush_mean:.2f} s; spaced {describe(after, size.events)}, "
                f"mean flush {after.flush_mean:.2f} s",
                flush=True,
            )
    cpu = statistics.median(a.cpu_seconds / b.cpu_seconds for b, a in rounds)
    rate = statistics.median(a.rate(size.events) / b.rate(size.events) for b, a in rounds)
    before, after = median_side([b for b, _ in rounds]), median_side([a for _, a in rounds])
    print(
        f"flush_spacing: {size.models} models, {size.events} events: "
        f"back to back {describe(before, size.events)}; spaced {describe(after, size.events)}; "
        f"CPU per event {cpu:.2f} of back to back, read rate {rate:.2f}x"
    )


if __name__ == "__main__":
    main()
