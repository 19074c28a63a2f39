"""Caps: what a hostile stream makes the consumer hold, capped and uncapped.

Streams the worst case the caps are for through driftwatch's ingestion loop in
this process (decode, version gate, aggregation, the flush's merge into SQLite
rows), over the in-memory fake broker so that the figure is the consumer's alone:
``--values`` events whose categorical feature is a new value each time (one in a
thousand longer than the length cap), then ``--versions`` events of as many
distinct model versions, all in one-hour windows. It runs once with the caps at
their defaults (``ingest.max_versions`` 20, ``ingest.max_categories`` 1000,
``ingest.max_category_length`` 256) and once with them out of reach, in the same
process, one after the other.

The memory figure is the traced (``tracemalloc``) peak of Python allocations while
a chunk of events is decoded, aggregated and flushed, above what was held before
it, the largest over the chunks: the stored rows a flush loads and merges grow
with the window when uncapped, and stay put when capped. The input chunk itself
is allocated before the measurement starts. Also printed: the stored sketch
bytes and the ``window_aggregates`` rows each run left.

Last line: ``caps: <peak> MiB peak state with caps (<ratio> of uncapped <peak> MiB)``.
``--quick`` streams 20,000 values and 500 versions, for the smoke test.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import _common  # noqa: F401 -- puts the repository on sys.path
from kafka import TopicPartition
from sqlalchemy import func, select

from consumers.checkpoint import CheckpointStore
from consumers.dlq import DeadLetterPublisher
from consumers.events import EventDecoder
from consumers.fakes import FakeClock, FakeConsumer, FakeProducer
from consumers.loop import IngestLoop, IngestSettings
from consumers.positions import Rebalance
from consumers.stats import NullStats
from consumers.versions import DEFAULT_CAPS, StreamCaps
from db.migrate import upgrade
from db.models import WindowAggregate
from db.session import make_engine, make_session_factory
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import CategoryCaps

T = 1_800_000_000
TOPIC, PARTITIONS, CHUNK = "predictions", 3, 50_000
SHOP = ModelSpec(
    "shop",
    (
        FeatureSpec("item", FeatureKind.CATEGORICAL),
        FeatureSpec("amount", FeatureKind.NUMERICAL, edges=(0.0, 10.0, 100.0)),
    ),
    PredictionSpec(PredictionKind.CATEGORICAL),
    window_seconds=3600,
)
UNCAPPED = StreamCaps(max_versions=10**9, categories=CategoryCaps())


def event(i: int, version: str, item: str) -> bytes:
    stamp = datetime.fromtimestamp(T + i % 3600, UTC).isoformat().replace("+00:00", "Z")
    return (
        b'{"event_id":"e%d","model":"shop","model_version":"%s","timestamp":"%s",'
        b'"features":{"item":"%s","amount":5.0},"prediction":"class-%d"}'
        % (i, version.encode(), stamp.encode(), item.encode(), i % 3)
    )


def hostile(values: int, versions: int) -> list[bytes]:
    """Distinct category values (every thousandth one too long), then distinct versions."""
    out = [
        event(i, "v1", "x" * 300 + str(i) if i % 1000 == 0 else f"item-{i}") for i in range(values)
    ]
    out += [event(values + i, f"version-{i}", "a") for i in range(versions)]
    return out


@dataclass(frozen=True)
class Outcome:
    peak: int
    stored: int
    rows: int


def run(caps: StreamCaps, events: list[bytes], workdir: Path) -> Outcome:
    url = f"sqlite:///{workdir / 'db.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    clock = FakeClock(T + 7200.0)
    parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer = FakeConsumer(clock, parts, max_records=5000)
    loop = IngestLoop(
        consumer,
        EventDecoder({"shop": SHOP}),
        CheckpointStore(make_session_factory(engine), "bench", clock.time),
        DeadLetterPublisher(FakeProducer, "dead-letters"),
        IngestSettings(TOPIC, flush_events=CHUNK, caps=caps),
        NullStats(),
        clock=clock,
    )
    consumer.subscribe([TOPIC], listener=Rebalance(loop))
    peak = 0
    tracemalloc.start()
    try:
        for first in range(0, len(events), CHUNK):
            for i, value in enumerate(events[first : first + CHUNK], start=first):
                consumer.append(parts[i % PARTITIONS], value)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            while batch := loop._poll(0):
                loop._process(batch)
            loop._flush_with_retry(deadline=None)
            peak = max(peak, tracemalloc.get_traced_memory()[1] - before)
            for part in parts:  # read records are the broker's, not the consumer's
                consumer.log[part] = [None] * len(consumer.log[part])  # type: ignore[list-item]
    finally:
        tracemalloc.stop()
    with make_session_factory(engine)() as s:
        w = WindowAggregate
        stored = s.scalar(select(func.sum(func.length(w.sketch)))) or 0
        rows = s.scalar(select(func.count()).select_from(w)) or 0
    engine.dispose()
    return Outcome(peak, int(stored), int(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="20,000 values, 500 versions")
    args = parser.parse_args()
    values, versions = (20_000, 500) if args.quick else (args.values, args.versions)
    events = hostile(values, versions)
    print(f"{values:,} distinct category values, then {versions:,} distinct versions", flush=True)
    results = {}
    for name, caps in (("uncapped", UNCAPPED), ("capped", DEFAULT_CAPS)):
        with tempfile.TemporaryDirectory(prefix=f"caps-{name}-") as tmp:
            results[name] = got = run(caps, events, Path(tmp))
        print(
            f"{name}: peak traced state {got.peak / 2**20:.1f} MiB, "
            f"stored sketches {got.stored / 2**20:.2f} MiB in {got.rows} rows",
            flush=True,
        )
    capped, uncapped = results["capped"], results["uncapped"]
    print(
        f"caps: {capped.peak / 2**20:.1f} MiB peak state with caps "
        f"({capped.peak / uncapped.peak:.2f} of uncapped {uncapped.peak / 2**20:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
