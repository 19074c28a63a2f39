"""Memory: does the consumer's footprint stay flat while one window grows?

Fills a 3-partition topic with ``--events`` 20-feature prediction events that
all fall into one (day-long) window, then reads them with (a) a bare
kafka-python consumer and (b) driftwatch's ingestion loop (decode, aggregate
into the window sketch with its row sample, transactional SQL flushes), in
this one process run. Each side's resident set size is sampled as it goes;
growth is measured from the end of a warm-up (the first ``--warmup`` events,
when buffers, caches and the window's sample have been allocated) to the peak
after it.

Last line: ``memory: <n> events in one window, RSS grew <mb> MB after warm-up
(bare consumer: <mb> MB)``. Target: under 50 MB for 5,000,000 events.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import Progress, bare_consumer, broker, create_topic
from kafka import KafkaConsumer

from consumers.checkpoint import CheckpointStore
from consumers.dlq import DeadLetterPublisher
from consumers.events import EventDecoder
from consumers.loop import IngestLoop, IngestSettings
from consumers.synthetic import SyntheticPlan, SyntheticStream, produce
from db.migrate import upgrade
from db.repositories import WindowAggregateRepository
from db.session import make_engine, make_session_factory
from service.config import KafkaConfig, ModelConfig
from service.kafka_clients import consumer_options
from service.process import limit_malloc_arenas
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wide_model

_PAGE = os.sysconf("SC_PAGE_SIZE")
DAY = 86400


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


class RssTrack:
    """RSS at the end of the warm-up and the highest RSS seen after it."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.base: float | None = None
        self.peak = 0.0

    def seen(self, events: int) -> None:
        if self.base is None:
            if events >= self.warmup:
                gc.collect()
                self.base = rss_mb()
            return
        self.peak = max(self.peak, rss_mb())

    @property
    def growth(self) -> float:
        return max(self.peak - (self.base or 0.0), 0.0)


def _spec() -> Any:
    return ModelConfig.model_validate(wide_model(window="1d")).spec("wide")


def write_events(path: Path, count: int, start: float, rate: float) -> None:
    """``count`` events as ``key<TAB>json`` lines, fast: 100,000 synthetic events are
    generated, then repeated under new ids and times."""
    stream = SyntheticStream(SyntheticPlan(model=_spec(), rate=rate, start=start))
    templates = []
    for event in stream.events(min(count, 100_000)):
        value = event.prediction
        # Split around the id and the timestamp so repeats only splice in new ones.
        id_at = value.index(b'"event_id":"') + len(b'"event_id":"')
        id_end = value.index(b'"', id_at)
        ts_at = value.index(b'"timestamp":"') + len(b'"timestamp":"')
        ts_end = value.index(b'"', ts_at)
        templates.append((value[:id_at], value[id_end:ts_at], value[ts_end:]))
    with open(path, "wb") as out:
        for i in range(count):
            head, middle, tail = templates[i % len(templates)]
            key = f"bench-{i:012d}".encode()
            moment = datetime.fromtimestamp(start + i / rate, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out.write(b"".join((key, b"\t", head, key, middle, moment.encode(), tail, b"\n")))


def fill(kafka: TestKafka, topic: str, count: int, workdir: Path) -> None:
    create_topic(kafka, topic, 3)
    # Two days back, from the start of a day: every event lands in one window.
    start = (time.time() - 2 * DAY) // DAY * DAY
    rate = count / (DAY / 2)
    began = time.perf_counter()
    if kafka.local is None:
        producer = kafka.producer(batch_size=512 * 1024, linger_ms=50, acks=1)
        plan = SyntheticPlan(model=_spec(), rate=rate, start=start)
        try:
            produce(producer, [SyntheticStream(plan)], count, topic, None)
        finally:
            producer.close()
    else:
        path = workdir / "events.txt"
        write_events(path, count, start, rate)
        kafka.local.produce_file(topic, path)
        path.unlink()
    print(f"produced {count:,} events in {time.perf_counter() - began:.0f}s", flush=True)


def bare(kafka: TestKafka, topic: str, count: int, track: RssTrack) -> None:
    consumer = bare_consumer(kafka, topic)
    seen = 0
    while seen < count:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
        track.seen(seen)
    consumer.close()


def full(kafka: TestKafka, topic: str, count: int, workdir: Path, track: RssTrack) -> int:
    url = f"sqlite:///{workdir / 'memory.db'}"
    engine = make_engine(url)
    upgrade(engine)
    opts = consumer_options(KafkaConfig(bootstrap_servers=[kafka.bootstrap_servers]), "earliest")
    opts.update(kafka.client_options, group_id=f"bench-{topic}")
    sessions = make_session_factory(engine)
    stop = threading.Event()
    loop = IngestLoop(
        consumer=KafkaConsumer(**opts),
        decoder=EventDecoder({"wide": _spec()}),
        store=CheckpointStore(sessions, "bench-memory", time.time),
        dead_letters=DeadLetterPublisher(kafka.producer, f"{topic}-dlq"),
        settings=IngestSettings(topic=topic, flush_events=50_000, flush_interval=2.0),
        stats=Progress(count, stop, each=track.seen),
    )
    loop.run(stop)
    loop.dlq.close(timeout=2)
    with sessions() as session:
        windows = WindowAggregateRepository(session).window_counts("wide")
    engine.dispose()
    assert len(windows) == 1, f"expected one window, got {len(windows)}"
    return windows[0].events


def main() -> None:
    limit_malloc_arenas()  # as `driftwatch run` does before it starts any thread
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--warmup", type=int, default=200_000)
    args = parser.parse_args()
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        topic = f"bench-memory-{int(time.time())}"
        fill(kafka, topic, args.events, Path(tmp))
        bare_track, full_track = RssTrack(args.warmup), RssTrack(args.warmup)
        bare(kafka, topic, args.events, bare_track)
        print(f"bare consumer: RSS grew {bare_track.growth:.1f} MB after warm-up", flush=True)
        stored = full(kafka, topic, args.events, Path(tmp), full_track)
        print(
            f"driftwatch: {stored:,} events in one window in SQL; RSS {full_track.base:.0f} MB "
            f"after warm-up, peak {full_track.peak:.0f} MB",
            flush=True,
        )
        print(
            f"memory: {stored} events in one window, RSS grew {full_track.growth:.1f} MB "
            f"after warm-up (bare consumer: {bare_track.growth:.1f} MB)"
        )


if __name__ == "__main__":
    main()
