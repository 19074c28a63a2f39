"""Ingestion throughput and CPU: driftwatch's full path against a bare kafka-python loop.

Both read the same 3-partition topic of 20-feature prediction events in this
one benchmark run, each in a fresh process of its own: (a) a consumer that only
polls (``_bare_consumer.py``: kafka-python and the standard library, nothing
else), (b) driftwatch's ingestion loop (decode, validate, aggregate,
transactional SQL flush with offsets) with the labeled-event archive off, built
and started as the service starts it, (c) the same with the archive on (a Delta
append per flush before the SQL commit, in a local directory). Each side is
timed from its first record to its last, in wall-clock seconds and in its own
process's CPU seconds (``time.process_time``: every thread, user and system),
which a shared machine disturbs far less than wall-clock time. Each round runs
the three back to back; the ratios printed last are the medians over
``--rounds`` of each round's ratios, and the rates the medians of the rounds'
rates. The CPU ratio is driftwatch's CPU per event over the bare consumer's.

Last line: ``ingest: <events/s> events/s (<wall ratio> of bare consumer, <cpu
ratio> CPU); archive on: <events/s> events/s (<wall ratio> of bare consumer,
<cpu ratio> CPU)`` (one line). ``--quick`` runs 3,000 events once, for the
smoke test (the ratios mean nothing then).

``--stages`` measures where driftwatch's CPU per event goes instead: each round
runs the bare consumer and driftwatch's loop cut down to its polling (each
poll's offsets advanced and committed by the flushes, nothing decoded), to its
polling and decoding, whole (archive off) and whole with the archive on, each
in a fresh process. Last line: ``stages: bare consumer <s>; polling <s> (<x>);
+ decoding <s> (<x>); full <s> (<x>); archive on <s> (<x>) CPU s per million
events`` (medians; ratios to the bare consumer's CPU of the same round).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import Progress, broker, broker_env, fill_topic
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
from service.process import limit_malloc_arenas, pin_mmap_threshold, settle_heap
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wide_model

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Run:
    """One side's reading of the topic: wall-clock and process CPU seconds."""

    events: int
    seconds: float
    cpu_seconds: float

    # A quick run's bare side can read everything in one poll: floors keep its ratios finite.
    @property
    def rate(self) -> float:
        return self.events / max(self.seconds, 1e-6)

    @property
    def cpu_per_million(self) -> float:
        return max(self.cpu_seconds, 1e-6) / self.events * 1e6


def _spec() -> Any:
    from service.config import ModelConfig

    return ModelConfig.model_validate(wide_model()).spec("wide")


def _last_json(argv: list[str], kafka: TestKafka) -> dict[str, Any]:
    """Run a side's process; the JSON object its last output line holds."""
    done = subprocess.run(
        argv, env=broker_env(kafka), cwd=HERE, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{argv[1:3]} exited with {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bare(kafka: TestKafka, topic: str, count: int) -> Run:
    """The bare consumer, in a fresh process, with the options the service's consumer has."""
    opts = consumer_options(KafkaConfig(bootstrap_servers=[kafka.bootstrap_servers]), "earliest")
    opts.update(kafka.client_options)
    # Group settings mean nothing to a consumer outside any group (and a class is no JSON).
    for key in ("group_id", "partition_assignment_strategy"):
        opts.pop(key, None)
    args = {"options": opts, "topic": topic, "count": count}
    out = _last_json([sys.executable, str(HERE / "_bare_consumer.py"), json.dumps(args)], kafka)
    if out["read"] < count:
        raise SystemExit(f"the bare consumer read {out['read']} of {count} events")
    return Run(count, out["seconds"], out["cpu_seconds"])


def full(
    kafka: TestKafka, topic: str, count: int, workdir: Path, round_no: int, archive: bool
) -> Run:
    """driftwatch's loop over ``topic``, in a fresh process (``--child``)."""
    name = f"{'archive' if archive else 'ingest'}-{round_no}"
    argv = [sys.executable, str(HERE / "ingest.py"), "--child", name, "--topic", topic]
    argv += ["--events", str(count), "--workdir", str(workdir)]
    out = _last_json(argv + (["--archive"] if archive else []), kafka)
    return Run(count, out["seconds"], out["cpu_seconds"])


STAGES = ("polling", "decoding", "full")


def child(
    topic: str, count: int, workdir: Path, name: str, archive: bool, stage: str = "full"
) -> None:
    """One driftwatch run, in this process: build the loop as the service does, run it
    (cut down to ``stage``), check what it stored, and print ``{"seconds": ...,
    "cpu_seconds": ...}``."""
    limit_malloc_arenas()
    pin_mmap_threshold()
    with broker() as kafka:
        spec = _spec()
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
        if stage != "full":
            loop._process = _cut_down(loop, progress, decode=stage == "decoding")  # type: ignore[method-assign]
        settle_heap()
        loop.run(stop)
        assert progress.first is not None, "the loop read nothing"
        seconds = time.perf_counter() - progress.first
        cpu = time.process_time() - progress.first_cpu
        loop.dlq.close(timeout=2)
        stored = CheckpointStore(make_session_factory(engine), f"bench-{name}", time.time)
        offsets = stored.load(topic, range(3))
        assert sum(o.next_offset for o in offsets.values()) == count, "full path did not store all"
        if archive:
            rows = read_table(settings, "wide", Kind.PREDICTIONS, columns=["offset"])
            assert rows is not None and rows.num_rows == count, "the archive does not hold all"
        engine.dispose()
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu}), flush=True)


def _cut_down(loop: IngestLoop, progress: Progress, decode: bool) -> Any:
    """The loop's handling of a poll without its aggregation: each partition's offsets
    advance (its flushes commit them, as the whole loop's do), its values are decoded
    when ``decode`` (msgspec's typed decoding, the events then dropped) and counted."""

    def process(batch: Any) -> None:
        for tp, records in batch.items():
            if decode:
                loop.decoder.decode_batch([r.value for r in records])
            loop.book.advance((tp.topic, tp.partition), records[-1].offset + 1, None)
            progress.consumed("wide", len(records))

    return process


def stages(kafka: TestKafka, topic: str, count: int, workdir: Path, rounds: int) -> None:
    """``--stages``: per round the bare consumer, then driftwatch's loop at each stage
    and whole with the archive on; then the medians."""
    runs = [*STAGES, "archive"]
    per_million: dict[str, list[float]] = {s: [] for s in ("bare", *runs)}
    for r in range(rounds):
        per_million["bare"].append(bare(kafka, topic, count).cpu_per_million)
        for stage in runs:
            argv = [sys.executable, str(HERE / "ingest.py"), "--child", f"{stage}-{r}"]
            argv += ["--topic", topic, "--events", str(count), "--workdir", str(workdir)]
            argv += ["--archive", "--stage", "full"] if stage == "archive" else ["--stage", stage]
            out = _last_json(argv, kafka)
            per_million[stage].append(
                Run(count, out["seconds"], out["cpu_seconds"]).cpu_per_million
            )
        print(f"round {r + 1}: " + ", ".join(
            f"{k} {v[-1]:.2f}" for k, v in per_million.items()
        ) + " CPU s/M", flush=True)  # fmt: skip
    bare_cpu = statistics.median(per_million["bare"])

    def figure(stage: str) -> str:
        ratios = [s / b for s, b in zip(per_million[stage], per_million["bare"], strict=True)]
        median = statistics.median(per_million[stage])
        return f"{median:.2f} ({statistics.median(ratios):.2f})"

    print(
        f"stages: bare consumer {bare_cpu:.2f}; polling {figure('polling')}; "
        f"+ decoding {figure('decoding')}; full {figure('full')}; "
        f"archive on {figure('archive')} CPU s per million events"
    )


def _summary(label: str, runs: list[tuple[Run, Run]]) -> str:
    rate = statistics.median(d.rate for _, d in runs)
    wall = statistics.median(d.rate / b.rate for b, d in runs)
    cpu = statistics.median(d.cpu_per_million / b.cpu_per_million for b, d in runs)
    return f"{label}: {rate:.0f} events/s ({wall:.2f} of bare consumer, {cpu:.2f} CPU)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3,000 events, one round (smoke test)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--archive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", choices=STAGES, default="full", help=argparse.SUPPRESS)
    parser.add_argument(
        "--stages", action="store_true", help="where driftwatch's CPU goes (see the docstring)"
    )
    args = parser.parse_args()
    if args.child:
        child(args.topic, args.events, args.workdir, args.child, args.archive, args.stage)
        return
    if args.quick:
        args.events, args.rounds = 3000, 1
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        topic = f"bench-ingest-{int(time.time())}"
        fill_topic(kafka, topic, _spec(), args.events)
        sample = kafka.read_all(topic, timeout=30)[:1000]
        size = sum(len(r.value) for r in sample) / max(len(sample), 1)
        print(f"event size: {size:.0f} bytes, 20 features", flush=True)
        if args.stages:
            stages(kafka, topic, args.events, Path(tmp), args.rounds)
            return
        full_runs: list[tuple[Run, Run]] = []
        archive_runs: list[tuple[Run, Run]] = []
        for r in range(args.rounds):
            b = bare(kafka, topic, args.events)
            f = full(kafka, topic, args.events, Path(tmp), r, archive=False)
            a = full(kafka, topic, args.events, Path(tmp), r, archive=True)
            print(
                f"round {r + 1}: bare {b.rate:,.0f} events/s {b.cpu_per_million:.1f} CPU s/M, "
                f"driftwatch {f.rate:,.0f} events/s {f.cpu_per_million:.1f} CPU s/M, "
                f"with the archive {a.rate:,.0f} events/s {a.cpu_per_million:.1f} CPU s/M",
                flush=True,
            )
            full_runs.append((b, f))
            archive_runs.append((b, a))
        # Each round's three runs follow each other, so their ratios share the machine's
        # state of the moment; the median of those ratios is what one run of the service
        # against the bare consumer gives, where a ratio of best rounds would pit one lucky
        # bare round against another round's driftwatch run.
        print(f"{_summary('ingest', full_runs)}; {_summary('archive on', archive_runs)}")


if __name__ == "__main__":
    main()
