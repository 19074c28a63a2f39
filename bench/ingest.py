"""Ingestion throughput: driftwatch's full path against a bare kafka-python loop.

Both read the same 3-partition topic of 20-feature prediction events in this
one process run: (a) a consumer that only polls, (b) driftwatch's ingestion
loop (decode, validate, aggregate, transactional SQL flush with offsets) with
the labeled-event archive off, (c) the same with the archive on (a Delta append
per flush before the SQL commit, in a local directory). Each is timed from its
first record to its last. Each round runs the three back to back; the ratios
printed last are the medians over ``--rounds`` of each round's ratios, and the
rates the medians of the rounds' rates.

Last line: ``ingest: <events/s> events/s (<ratio> of bare consumer); archive on:
<events/s> events/s (<ratio> of bare consumer)`` (one line).
``--quick`` runs 3,000 events once, for the smoke test (the ratio means nothing then).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import Progress, bare_consumer, broker, fill_topic
from kafka import KafkaConsumer

from consumers.archive import ArchiveIntake
from consumers.checkpoint import CheckpointStore
from consumers.dlq import DeadLetterPublisher
from consumers.events import EventDecoder
from consumers.loop import IngestLoop, IngestSettings
from db.archive import ArchiveSettings, ArchiveWriter, Kind, read_table
from db.migrate import upgrade
from db.session import make_engine, make_session_factory
from service.config import KafkaConfig
from service.kafka_clients import consumer_options
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wide_model


def _spec() -> Any:
    from service.config import ModelConfig

    return ModelConfig.model_validate(wide_model()).spec("wide")


def bare(kafka: TestKafka, topic: str, count: int) -> float:
    consumer = bare_consumer(kafka, topic)
    seen, first = 0, 0.0
    while seen < count:
        for records in consumer.poll(timeout_ms=500).values():
            if not first:
                first = time.perf_counter()
            seen += len(records)
    elapsed = time.perf_counter() - first
    consumer.close()
    return count / elapsed


def full(
    kafka: TestKafka, topic: str, count: int, workdir: Path, round_no: int, archive: bool
) -> float:
    spec = _spec()
    name = f"{'archive' if archive else 'ingest'}-{round_no}"
    url = f"sqlite:///{workdir / f'{name}.db'}"
    settings = ArchiveSettings(uri=str(workdir / name))
    intake = ArchiveIntake(ArchiveWriter(settings, name), ["wide"]) if archive else None
    stop = threading.Event()
    progress = Progress(count, stop)
    engine = make_engine(url)
    upgrade(engine)
    cfg = KafkaConfig(bootstrap_servers=[kafka.bootstrap_servers])
    opts = consumer_options(cfg, "earliest")
    opts.update(kafka.client_options, group_id=f"bench-{topic}-{name}")
    loop = IngestLoop(
        consumer=KafkaConsumer(**opts),
        decoder=EventDecoder({"wide": spec}),
        store=CheckpointStore(make_session_factory(engine), f"bench-{name}", time.time),
        dead_letters=DeadLetterPublisher(kafka.producer, f"{topic}-dlq"),
        settings=IngestSettings(topic=topic, flush_events=50_000, flush_interval=2.0),
        stats=progress,
        archive=intake,
    )
    loop.run(stop)
    assert progress.first is not None, "the loop read nothing"
    elapsed = time.perf_counter() - progress.first
    loop.dlq.close(timeout=2)
    stored = CheckpointStore(make_session_factory(engine), f"bench-{name}", time.time)
    offsets = stored.load(topic, range(3))
    assert sum(o.next_offset for o in offsets.values()) == count, "full path did not store all"
    if archive:
        rows = read_table(settings, "wide", Kind.PREDICTIONS, columns=["offset"])
        assert rows is not None and rows.num_rows == count, "the archive does not hold all"
    engine.dispose()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3,000 events, one round (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 3000, 1
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        topic = f"bench-ingest-{int(time.time())}"
        fill_topic(kafka, topic, _spec(), args.events)
        sample = kafka.read_all(topic, timeout=30)[:1000]
        size = sum(len(r.value) for r in sample) / max(len(sample), 1)
        print(f"event size: {size:.0f} bytes, 20 features", flush=True)
        rounds: list[tuple[float, float, float]] = []
        for r in range(args.rounds):
            b = bare(kafka, topic, args.events)
            f = full(kafka, topic, args.events, Path(tmp), r, archive=False)
            a = full(kafka, topic, args.events, Path(tmp), r, archive=True)
            print(
                f"round {r + 1}: bare {b:,.0f} events/s, driftwatch {f:,.0f} events/s "
                f"({f / b:.2f}), with the archive {a:,.0f} events/s ({a / b:.2f})",
                flush=True,
            )
            rounds.append((b, f, a))
        # Each round's three runs follow each other, so their ratios share the machine's
        # state of the moment; the median of those ratios is what one run of the service
        # against the bare consumer gives, where a ratio of best rounds would pit one lucky
        # bare round against another round's driftwatch run.
        full_rate = statistics.median(f for _, f, _ in rounds)
        archive_rate = statistics.median(a for _, _, a in rounds)
        full_ratio = statistics.median(f / b for b, f, _ in rounds)
        archive_ratio = statistics.median(a / b for b, _, a in rounds)
        print(
            f"ingest: {full_rate:.0f} events/s ({full_ratio:.2f} of bare consumer); "
            f"archive on: {archive_rate:.0f} events/s ({archive_ratio:.2f} of bare consumer)"
        )


if __name__ == "__main__":
    main()
