"""Memory: does the consumer's footprint stay flat while one window grows?

Fills a 3-partition topic with ``--events`` 20-feature prediction events that
all fall into one (day-long) window, then reads them with (a) a bare
kafka-python consumer and (b) driftwatch's ingestion loop (decode, aggregate
into the window sketch with its row sample, transactional SQL flushes), each
in a fresh child process that applies the allocator settings of ``driftwatch
run`` first: the bare consumer once, driftwatch's loop ``--rounds`` times.
Each process's resident set size is sampled as it reads; growth is measured
from the end of a warm-up (the first ``--warmup`` events, when buffers, caches
and the window's sample have been allocated) to the peak after it. A single
figure carries whichever fetch buffers happen to be in flight at the two
samples, so the median of the rounds is reported, with their range.

Last line: ``memory: <n> events in one window, RSS grew <mb> MB after warm-up
(median of <r> rounds, <min>-<max>; bare consumer: <mb> MB)``. Target: under
50 MB for 5,000,000 events. ``--quick`` reads 10,000 events in two rounds, for the
smoke test.
"""

from __future__ import annotations

import argparse
import gc
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import Progress, bare_consumer, broker, broker_env, create_topic, rss_mb
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
from service.process import limit_malloc_arenas, pin_mmap_threshold, settle_heap
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wide_model

DAY = 86400


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


def full(
    kafka: TestKafka, topic: str, count: int, workdir: Path, track: RssTrack, group: str
) -> int:
    url = f"sqlite:///{workdir / 'memory.db'}"
    engine = make_engine(url)
    upgrade(engine)
    opts = consumer_options(KafkaConfig(bootstrap_servers=[kafka.bootstrap_servers]), "earliest")
    opts.update(kafka.client_options, group_id=group)
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
    settle_heap()  # as `driftwatch run` does once everything is built
    loop.run(stop)
    loop.dlq.close(timeout=2)
    with sessions() as session:
        windows = WindowAggregateRepository(session).window_counts("wide")
    engine.dispose()
    assert len(windows) == 1, f"expected one window, got {len(windows)}"
    return windows[0].events


_ROUND = re.compile(r"round: (\S+) base=(\S+) peak=(\S+) growth=(\S+) stored=(\d+)")


def read_once(side: str, topic: str, count: int, warmup: int, group: str) -> None:
    """One child process: read ``topic`` with one side, print its ``round:`` line."""
    limit_malloc_arenas()  # as `driftwatch run` does before it starts any thread
    pin_mmap_threshold()
    track = RssTrack(warmup)
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        if side == "bare":
            bare(kafka, topic, count, track)
            stored = count
        else:
            stored = full(kafka, topic, count, Path(tmp), track, group)
    print(
        f"round: {side} base={track.base or 0.0:.1f} peak={track.peak:.1f} "
        f"growth={track.growth:.1f} stored={stored}"
    )


def in_child(kafka: TestKafka, argv: list[str]) -> re.Match[str]:
    """Run ``read_once`` in a fresh process against ``kafka``; its ``round:`` line."""
    done = subprocess.run(
        [sys.executable, __file__, *argv],
        env=broker_env(kafka),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    found = _ROUND.fullmatch(lines[-1]) if lines else None
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"a round {argv} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--warmup", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="driftwatch's, one process each")
    parser.add_argument(
        "--quick", action="store_true", help="10,000 events, two rounds (smoke test)"
    )
    parser.add_argument("--read", choices=["bare", "driftwatch"], help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.events, args.warmup, args.rounds = 10_000, 1_000, 2
    if args.read:
        read_once(args.read, args.topic, args.events, args.warmup, args.group)
        return
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        topic = f"bench-memory-{int(time.time())}"
        fill(kafka, topic, args.events, Path(tmp))
        sizes = ["--events", str(args.events), "--warmup", str(args.warmup), "--topic", topic]
        bare_growth = float(in_child(kafka, ["--read", "bare", *sizes]).group(4))
        print(f"bare consumer: RSS grew {bare_growth:.1f} MB after warm-up", flush=True)
        growths: list[float] = []
        stored = 0
        for r in range(args.rounds):
            group = f"bench-{topic}-{r}"
            found = in_child(kafka, ["--read", "driftwatch", "--group", group, *sizes])
            _, base, peak, growth, count = found.groups()
            growths.append(float(growth))
            stored = int(count)
            print(
                f"round {r + 1}: driftwatch stored {stored:,} events in one window; RSS "
                f"{float(base):.0f} MB after warm-up, peak {float(peak):.0f} MB, "
                f"grew {float(growth):.1f} MB",
                flush=True,
            )
        print(
            f"memory: {stored} events in one window, RSS grew {statistics.median(growths):.1f} "
            f"MB after warm-up (median of {len(growths)} rounds, {min(growths):.1f}-"
            f"{max(growths):.1f}; bare consumer: {bare_growth:.1f} MB)"
        )


if __name__ == "__main__":
    main()
