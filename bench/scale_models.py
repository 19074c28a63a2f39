"""Scale with models: how the service's costs grow from tens to hundreds of models.

Two sizes, by default 20 and 200 models, each with 3 versions and 30 features
(22 numerical, 8 categorical), every model version sending the same events per
window, so a size of ten times the models is ten times the work and 10.0 is
the linear bound of each growth ratio. For each size a fresh child process
(its own RSS, its own SQLite database) stores each model's reference profile
and runs what ``driftwatch run`` runs, built by the service's own wiring: the
ingestion loop (archive on, as configured by default) reads a fresh
3-partition topic to its end, and the ``evaluate`` job (profiles, drift
evaluation, performance evaluation) runs once over every closed window, then
once more with nothing new (the steady state of a tick).

The flushes are alike at both sizes by construction: the parent cuts every window of
the stream into ``--flushes-per-window`` slices of the same events per model version,
spreads each model version's events of a slice evenly over the partitions, and
produces a slice only once the loop has flushed the one before (the first once the
loop's consumer holds every partition, so that no rebalance of the group's join
revokes partitions mid-slice). The loop flushes by count, a slice's count, so each
flush holds one slice: one window of every model version in every partition, as a
fixed flush interval gives at a fixed rate per model. A rebalance later in a run (seen
once on a loaded host) flushes part of a slice, and the announced flush sends the next
slice early: the child counts such revocations and the size is run again, at most
three times. A flush at ten times the models
thus touches exactly ten times the window rows.

Measured per size: the loop's flush duration (p50, p99; the figure the service exports
as ``driftwatch_flush_duration_seconds``) and the window rows each flush wrote (their
mean is printed, to check the above); the ingestion loop's process CPU per event read,
from its first record (flushes included: a model version's events reach each poll a
few at a time here, as they do when many models share a stream, so this is the
per-event cost of small batches); the duration of the evaluating tick; SQL rows
written per closed window (window aggregates of the closed windows plus every row the
tick wrote: reports, feature results, alerts); and the child's peak RSS, whose growth
is that of the part above the RSS the child started with (its imports, the same at
every size).

Each of ``--rounds`` rounds (default 3) runs both sizes, the few models first, each in
its fresh child process. A single figure of a single run swings by tens of percent on
this kind of host while the work is exactly ten times (the same function calls per
window), so the bench reports medians: each size's figures are the medians over the
rounds, each growth ratio the median of the rounds' ratios (a round's two sizes run
back to back, so their ratio shares the machine's state of the moment).

Last line: ``scale: 20 models: flush p50 <ms> ms p99 <ms> ms (<n> rows/flush),
ingest <us> us CPU/event, tick <s> s, rows/window <n>, RSS <mb> MB; 200 models:
...; growth (linear = 10.0): flush p99 <x>, tick <x>, rows <x>, RSS <x>``.
``--quick`` runs 4 and 8 models of 8 features with a few events each and one
flush per window, once, for the smoke test. ``--db URL`` runs on PostgreSQL instead
of SQLite: each size in a scratch database created on the URL's server and dropped
after (the database the URL names is only connected to).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import Progress, broker, broker_env, create_topic, rss_mb
from sqlalchemy import create_engine, func, inspect, select, table, text
from sqlalchemy.engine import make_url

from consumers.checkpoint import CheckpointStore
from consumers.synthetic import SyntheticPlan, SyntheticStream, write_reference_csv
from db.migrate import upgrade
from db.models import WindowAggregate
from db.session import make_engine, make_session_factory
from service.config import Config, load_config
from service.metric_feeds import ReportMetrics
from service.metrics import Metrics
from service.monitoring.reference import profile_columns, read_reference, store
from service.process import settle_heap
from service.wiring.jobs import evaluation_job
from service.wiring.monitoring import (
    build_evaluator,
    build_ingest_loop,
    build_performance_evaluator,
)
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wide_model, write_config

VERSIONS = 3
WINDOW = 60  # seconds: wide_model's "1m", with 1m of allowed lateness
PARTITIONS = 3
REFERENCE_ROWS = 2000


@dataclass(frozen=True, slots=True)
class Size:
    models: int
    versions: int
    events_per_window: int  # per model version
    closed_windows: int
    flushes_per_window: int
    numerical: int = 22
    categorical: int = 8

    @property
    def per_stream(self) -> int:
        # Two windows more than are closed: the last one's end plus the allowed lateness
        # must lie behind the watermark.
        return self.events_per_window * (self.closed_windows + 2)

    @property
    def events(self) -> int:
        return self.models * self.versions * self.per_stream

    @property
    def per_slice(self) -> int:
        """Events per model version in a flush."""
        return self.events_per_window // self.flushes_per_window

    @property
    def flush_events(self) -> int:
        return self.models * self.versions * self.per_slice

    def check(self) -> None:
        if self.events_per_window % self.flushes_per_window:
            raise ValueError("--events-per-window must be a multiple of --flushes-per-window")
        if self.per_slice < PARTITIONS:
            raise ValueError(
                f"a flush must hold at least {PARTITIONS} events per model version, "
                "one per partition: fewer flushes per window or more events"
            )


@dataclass(frozen=True, slots=True)
class Figures:
    models: int
    events: int
    flushes: int
    flush_rows: float  # mean window rows a flush wrote
    flush_p50: float
    flush_p99: float
    tick: float
    idle_tick: float
    reports: int
    rows_per_window: float
    rows: dict[str, int]
    rss: float
    rss_start: float
    ingest_rate: float
    ingest_cpu_us: float  # the loop's process CPU per event read, flushes included
    # Revocations that flushed part of a slice: the run's flushes are then not one slice
    # each, and the parent runs the size again.
    partial_flushes: int = 0


def model_names(n: int) -> list[str]:
    return [f"model_{i:03d}" for i in range(n)]


def config_for(size: Size, kafka: TestKafka, db: str, topic: str, workdir: Path) -> Path:
    """The service config of ``size``: every model alike, the loop flushing by a slice's
    count."""
    model = wide_model(size.numerical, size.categorical, window="1m")
    return write_config(
        workdir / "config.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=db,
        topic=topic,
        group_id=f"bench-{topic}",
        models={name: model for name in model_names(size.models)},
        flush_events=size.flush_events,
        # Long enough that only the count triggers a flush, while the next slice is
        # produced too.
        flush_interval="10m",
        # The broker's largest session timeout: kafka-python sends no heartbeat to a 0.9
        # broker while a flush runs, and a long flush must not cost the group membership.
        extra_consumer={
            "max_poll_records": size.flush_events,
            "session_timeout_ms": 30000,
            "heartbeat_interval_ms": 3000,
        },
        # No partition counts as idle however long a tick takes: an idle stream would
        # close its open windows too, and the second tick would judge them.
        extra={"log_level": "WARNING", "evaluation": {"idle_partition_timeout": "1d"}},
    )


class Feed:
    """The stream of every model version, cut into the slices the loop flushes one by one.

    The models are alike, so one stream is drawn, from the start of a minute two hours
    ago, and each event is sent once per model version under its name and an id of its
    own: a stream per model version would hold its block of draws (about 15 MB each) all
    at once. The ``j``-th event of a slice goes to partition ``j mod`` the partitions, for
    every model version alike, so each one's events of a slice cover every partition.
    """

    def __init__(self, kafka: TestKafka, cfg: Config, size: Size, topic: str) -> None:
        create_topic(kafka, topic, PARTITIONS)
        specs = cfg.model_specs()
        first = next(iter(specs))
        plan = SyntheticPlan(
            model=specs[first],
            rate=size.events_per_window / WINDOW,
            start=(time.time() - 7200) // WINDOW * WINDOW,
        )
        self.head = f'"event_id":"{plan.seed:04x}-'.encode()
        self.named = f'"model":"{first}","model_version":"{plan.model_version}"'.encode()
        self.sources = [
            (f'"event_id":"{n:04x}-'.encode(), f'"model":"{m}","model_version":"v{v}"'.encode())
            for n, (m, v) in enumerate((m, v) for m in specs for v in range(1, size.versions + 1))
        ]
        self.slices = cut(
            [e.prediction for e in SyntheticStream(plan).events(size.per_stream)], size
        )
        self.kafka, self.topic = kafka, topic
        self.sent = 0
        self.producing = 0.0

    def send_next(self) -> None:
        """Produce the next slice, if any is left; returns once the broker has all of it."""
        if self.sent == len(self.slices):
            return
        began = time.perf_counter()
        producer = self.kafka.producer(batch_size=512 * 1024, linger_ms=50, acks=1)
        futures = []
        try:
            for j, value in enumerate(self.slices[self.sent]):
                for event_id, name in self.sources:
                    sent = value.replace(self.head, event_id, 1).replace(self.named, name, 1)
                    key = sent[sent.index(b'"event_id":"') + 12 : sent.index(b'","model"')]
                    futures.append(
                        producer.send(self.topic, key=key, value=sent, partition=j % PARTITIONS)
                    )
            producer.flush()
            for future in futures:
                future.get(timeout=30)  # re-raises a failed send: the loop would wait for it
        finally:
            producer.close()
        self.sent += 1
        self.producing += time.perf_counter() - began


def cut(template: list[bytes], size: Size) -> list[list[bytes]]:
    """``template`` (one model version's events, in time order) in slices of ``size.per_slice``
    events, each within one window."""
    windows: dict[int, list[bytes]] = {}
    for value in template:
        stamp = json.loads(value)["timestamp"]
        windows.setdefault(int(datetime.fromisoformat(stamp).timestamp()) // WINDOW, []).append(
            value
        )
    if any(len(events) != size.events_per_window for events in windows.values()):
        raise RuntimeError(
            f"expected {size.events_per_window} events in every window of the stream, got "
            f"{sorted(len(events) for events in windows.values())}"
        )
    return [
        events[i : i + size.per_slice]
        for _, events in sorted(windows.items())
        for i in range(0, len(events), size.per_slice)
    ]


def store_profiles(cfg: Config, sessions: Any, workdir: Path) -> None:
    """One reference profile, from the distributions the events are drawn from, per model."""
    specs = cfg.model_specs()
    first = next(iter(specs))
    path = workdir / "reference.csv"
    write_reference_csv(SyntheticPlan(model=specs[first], draw_seed=1), REFERENCE_ROWS, path)
    built = profile_columns(
        read_reference(path, specs[first], progress=False), specs[first], cfg.models[first], "bench"
    )
    now = datetime.now(UTC)
    for name in specs:
        store(sessions, name, built, now)


ATTEMPTS = 3  # runs of a size a rebalance may spoil before the bench gives up
FLUSHED = "flushed"  # the child's line after each flush: the parent sends the next slice
# The child's line once its consumer holds every partition: the parent sends the first
# slice. Sent earlier, a join still settling could revoke partitions mid-slice, and that
# revocation's flush would hold part of a slice.
ASSIGNED = "assigned"


class FlushTimes(Progress):
    """Counts the loop's reads toward its target and keeps every flush's duration and the
    window rows it wrote (counted by :meth:`counting`)."""

    def __init__(self, target: int, done: threading.Event) -> None:
        super().__init__(target, done)
        self.flush_seconds: list[float] = []
        self.flush_rows: list[int] = []
        self.pending_rows = 0
        self.peak_rss = 0.0
        self.partial_flushes = 0

    def counting(self, store: CheckpointStore) -> None:
        """Count the window rows of each of ``store``'s commits."""
        commit = store.commit

        def counted(advances: Any, deltas: Any, *args: Any, **kwargs: Any) -> Any:
            self.pending_rows = len(deltas)
            return commit(advances, deltas, *args, **kwargs)

        store.commit = counted  # type: ignore[method-assign]

    def flushed(self, seconds: float, events: int) -> None:
        self.flush_seconds.append(seconds)
        self.flush_rows.append(self.pending_rows)
        self.peak_rss = max(self.peak_rss, rss_mb())
        print(FLUSHED, flush=True)


def table_counts(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())
            for name in inspect(conn).get_table_names()
            if name != "alembic_version"
        }


def closed_aggregates(sessions: Any) -> dict[Any, int]:
    """Window aggregate rows per window that has a drift report."""
    wa = WindowAggregate
    with sessions() as session:
        reported = select(text("window_start")).select_from(table("drift_reports"))
        rows = session.execute(
            select(wa.window_start, func.count())
            .where(wa.window_start.in_(reported))
            .group_by(wa.window_start)
        )
        return {start: int(n) for start, n in rows}


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile: a value that was measured, never an interpolation."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@dataclass(frozen=True, slots=True)
class Service:
    """What ``driftwatch run`` builds for ingestion, on a migrated database with every
    model's reference profile stored."""

    cfg: Config
    engine: Any
    sessions: Any
    metrics: Metrics
    evaluator: Any
    loop: Any


def build_service(config: Path, workdir: Path) -> Service:
    cfg = load_config(config)
    engine = make_engine(cfg.database.url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    store_profiles(cfg, sessions, workdir)
    metrics = Metrics()
    evaluator = build_evaluator(cfg, sessions, ReportMetrics(metrics))
    loop = build_ingest_loop(cfg, metrics, specs=evaluator.specs())
    return Service(cfg, engine, sessions, metrics, evaluator, loop)


def measure(config: Path, size: Size, workdir: Path, profile: Path | None = None) -> Figures:
    """In a fresh process: ingest the topic as the service does, then tick its evaluation."""
    rss_start = rss_mb()
    built = build_service(config, workdir)
    cfg, engine, sessions, metrics = built.cfg, built.engine, built.sessions, built.metrics
    evaluator, loop = built.evaluator, built.loop
    stop = threading.Event()
    loop.stats = times = FlushTimes(size.events, stop)
    times.counting(loop.store)
    watch_assignment(loop, times)
    # As `driftwatch run` does once everything is built: without it every full
    # collection walks the 200 models' profiles and specs, and the figures grow with them.
    settle_heap()
    with profiled(profile, "ingest"):
        loop.run(stop)
    assert times.first is not None, "the loop read nothing"
    # From the first record, as the rate: the loop waits idle for the first slice.
    cpu = time.process_time() - times.first_cpu
    rate = size.events / (time.perf_counter() - times.first)
    loop.dlq.close(timeout=2)
    # Waits for each next slice included: a figure of the run, not of the loop.
    print(f"{size.models} models: read at {rate:,.0f} events/s", flush=True)
    performance = build_performance_evaluator(
        cfg, sessions, ReportMetrics(metrics), evaluator.finality
    )
    evaluate = evaluation_job(cfg, evaluator, loop, performance)
    before = table_counts(engine)
    with profiled(profile, "tick"):
        tick = timed_tick(evaluate.steps)
    written = {
        name: n - before.get(name, 0)
        for name, n in table_counts(engine).items()
        if n != before.get(name, 0)
    }
    idle_tick = timed_tick(evaluate.steps)
    aggregates = closed_aggregates(sessions)
    windows = len(aggregates)
    reports = written.get("drift_reports", 0)
    expected = size.models * size.versions * size.closed_windows
    if windows != size.closed_windows or reports != expected:
        raise RuntimeError(
            f"expected {expected} drift reports over {size.closed_windows} closed windows, "
            f"the tick wrote {reports} over {windows}"
        )
    rows = {"window_aggregates": sum(aggregates.values()), **written}
    engine.dispose()
    return Figures(
        models=size.models,
        events=size.events,
        flushes=len(times.flush_seconds),
        flush_rows=sum(times.flush_rows) / len(times.flush_rows),
        flush_p50=percentile(times.flush_seconds, 0.50),
        flush_p99=percentile(times.flush_seconds, 0.99),
        tick=tick,
        idle_tick=idle_tick,
        reports=reports,
        rows_per_window=sum(rows.values()) / windows,
        rows=rows,
        rss=max(times.peak_rss, rss_mb()),
        rss_start=rss_start,
        ingest_rate=rate,
        ingest_cpu_us=cpu / size.events * 1e6,
        partial_flushes=times.partial_flushes,
    )


def watch_assignment(loop: Any, times: FlushTimes) -> None:
    """Print :data:`ASSIGNED` once the loop's consumer holds every partition, and count
    (and name on stderr) each revocation that flushed a partial slice: the flushes are
    one slice each only without one."""
    assigned, revoked = loop.on_assigned, loop.on_revoked
    told = False

    def on_assigned(partitions: Any) -> None:
        nonlocal told
        assigned(partitions)
        if not told and len(loop.consumer.assignment()) == PARTITIONS:
            told = True
            print(ASSIGNED, flush=True)

    def on_revoked(partitions: Any) -> None:
        if partitions and loop.book.pending():
            times.partial_flushes += 1
            print(f"a rebalance revoked {partitions} mid-slice", file=sys.stderr, flush=True)
        revoked(partitions)

    loop.on_assigned, loop.on_revoked = on_assigned, on_revoked


@contextmanager
def profiled(directory: Path | None, part: str) -> Iterator[None]:
    """Profile the block into ``directory/<part>.pstats`` when a directory is given."""
    if directory is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(directory / f"{part}.pstats")


def timed_tick(steps: Any) -> float:
    """One run of the ``evaluate`` job's steps, as the scheduler runs them (minus its
    error handling: a failure here stops the benchmark instead of being logged)."""
    began = time.perf_counter()
    for step in steps:
        step.work()
    return time.perf_counter() - began


def in_child(
    kafka: TestKafka, config: Path, size: Size, feed: Feed, profile: Path | None
) -> Figures:
    """Run :func:`measure` in a fresh process, sending it the next slice after each of its
    flushes; its figures."""
    argv = [sys.executable, __file__, "--measure", str(config), "--size", json.dumps(asdict(size))]
    if profile is not None:
        (profile / str(size.models)).mkdir(parents=True, exist_ok=True)
        argv += ["--profile", str(profile / str(size.models))]
    errors = config.parent / "child.err"
    lines: list[str] = []
    with (
        errors.open("w") as err,
        subprocess.Popen(
            argv, env=broker_env(kafka), stdout=subprocess.PIPE, stderr=err, text=True
        ) as child,
    ):
        assert child.stdout is not None
        for raw in child.stdout:
            line = raw.rstrip("\n")
            if line in (FLUSHED, ASSIGNED):
                feed.send_next()
            else:
                lines.append(line)
    for line in lines[:-1]:
        print(line, flush=True)
    if child.returncode != 0 or not lines or not lines[-1].startswith("{"):
        tail = "\n".join(lines)[-2000:] + errors.read_text()[-4000:]
        raise RuntimeError(f"{size.models} models failed:\n{tail}")
    return Figures(**json.loads(lines[-1]))


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A database of its own on the PostgreSQL server of ``server``, dropped afterwards.

    The bench never runs in the database the URL names: its tables are left alone
    (until 2026-12-07 ``--db`` emptied that database, a trap for anyone who pointed
    it at a real one).
    """
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"driftwatch_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        try:
            yield make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        admin.dispose()


def describe(f: Figures) -> str:
    flush = (
        f"flush p50 {f.flush_p50 * 1000:.0f} ms p99 {f.flush_p99 * 1000:.0f} ms "
        f"({f.flush_rows:.0f} rows/flush)"
    )
    return (
        f"{f.models} models: {flush}, ingest {f.ingest_cpu_us:.0f} us CPU/event, "
        f"tick {f.tick:.2f} s, rows/window {f.rows_per_window:.0f}, RSS {f.rss:.0f} MB"
    )


def growth(few: Figures, many: Figures) -> dict[str, float]:
    """How each criterion's figure grew from ``few`` to ``many`` models."""
    return {
        "flush p99": many.flush_p99 / few.flush_p99,
        "tick": many.tick / few.tick,
        "rows": many.rows_per_window / few.rows_per_window,
        "RSS": (many.rss - many.rss_start) / (few.rss - few.rss_start),
    }


def medians(runs: list[Figures]) -> Figures:
    """One size's figures over its rounds: the median of each measured figure (the counts,
    which are the same in every round by construction, from the first)."""
    measured = {
        f.name: statistics.median(getattr(r, f.name) for r in runs)
        for f in fields(Figures)
        if f.type == "float"
    }
    return replace(runs[0], **measured)


def _measured(
    kafka: TestKafka, size: Size, url: str, here: Path, profile: Path | None
) -> tuple[Figures, Feed]:
    topic = f"bench-scale-{size.models}-{time.time_ns()}"
    config = config_for(size, kafka, url, topic, here)
    feed = Feed(kafka, load_config(config), size, topic)
    # The first slice once the child's consumer holds every partition, the rest one
    # after each flush.
    return in_child(kafka, config, size, feed, profile), feed


def run_size(
    kafka: TestKafka,
    size: Size,
    db: str | None,
    workdir: Path,
    profile: Path | None,
    attempt: int = 1,
) -> Figures:
    here = workdir / f"{size.models}-{attempt}"
    here.mkdir(parents=True)
    with ExitStack() as stack:
        url = f"sqlite:///{here / 'scale.db'}"
        if db is not None:
            url = stack.enter_context(scratch_database(db))
        figures, feed = _measured(kafka, size, url, here, profile)
    if figures.partial_flushes:
        # A rebalance (a 0.9 broker on a loaded host) flushed part of a slice, and the
        # flush that announced sent the next slice early: the figures are not of one
        # slice per flush. The premise is made true by running the size again.
        if attempt >= ATTEMPTS:
            raise RuntimeError(
                f"{size.models} models: a rebalance split a slice in each of {attempt} runs"
            )
        print(f"{size.models} models: a rebalance split a slice; running again", flush=True)
        return run_size(kafka, size, db, workdir, profile, attempt + 1)
    print(
        f"{size.models} models: produced {size.events:,} events in {feed.sent} slices "
        f"in {feed.producing:.1f}s",
        flush=True,
    )
    print(
        f"  {describe(figures)}; {figures.flushes} flushes, idle tick {figures.idle_tick:.2f} s, "
        f"{figures.reports} reports; rows per table {figures.rows}; "
        f"RSS {figures.rss_start:.0f} MB at start",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, nargs=2, default=[20, 200], metavar=("FEW", "MANY"))
    parser.add_argument("--events-per-window", type=int, default=50, help="per model version")
    parser.add_argument("--windows", type=int, default=3, help="closed windows per model version")
    parser.add_argument(
        "--flushes-per-window", type=int, default=2, help="flushes per window of the stream"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of both sizes; medians are reported"
    )
    parser.add_argument(
        "--db",
        help="a PostgreSQL server's URL: each size runs in a database of its own created "
        "there and dropped after, instead of SQLite (the URL's own database is not touched)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="4 and 8 models of 8 features, few events"
    )
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of each size's ingest and tick here"
    )
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.db is not None and not args.db.startswith(("postgresql://", "postgresql+")):
        # Not echoed: a URL may hold a password.
        parser.error("--db takes a PostgreSQL server's URL: postgresql://USER@HOST/DB")
    if args.measure is not None:
        size = Size(**json.loads(args.size))
        figures = measure(args.measure, size, args.measure.parent, args.profile)
        print(json.dumps(asdict(figures)))
        return
    features = {"numerical": 22, "categorical": 8}
    if args.quick:
        args.models, args.events_per_window, args.windows, args.flushes_per_window = (
            [4, 8],
            10,
            1,
            1,
        )
        args.rounds = 1
        features = {"numerical": 6, "categorical": 2}
    sizes = [
        Size(n, VERSIONS, args.events_per_window, args.windows, args.flushes_per_window, **features)
        for n in args.models
    ]
    for size in sizes:
        size.check()
    rounds: list[tuple[Figures, Figures]] = []
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            few, many = (
                run_size(kafka, s, args.db, Path(tmp) / str(r), args.profile) for s in sizes
            )
            rounds.append((few, many))
            print(f"round {r + 1}: {describe(few)}; {describe(many)}; {ratios(few, many)}")
    few, many = medians([f for f, _ in rounds]), medians([m for _, m in rounds])
    each = [growth(f, m) for f, m in rounds]
    grown = {name: statistics.median(g[name] for g in each) for name in each[0]}
    print(f"scale: {describe(few)}; {describe(many)}; {ratios(few, many, grown)}")


def ratios(few: Figures, many: Figures, grown: dict[str, float] | None = None) -> str:
    bound = many.models / few.models
    figures = growth(few, many) if grown is None else grown
    return f"growth (linear = {bound:.1f}): " + ", ".join(
        f"{name} {x:.1f}" for name, x in figures.items()
    )


if __name__ == "__main__":
    main()
