"""Smoke tests: every script in bench/ runs end to end at a tiny size and prints its line.

A benchmark is only run by hand, so a refactor can break it unnoticed; each
test here runs one as a subprocess with ``--quick``, against the session's
broker, and checks its documented last line. They check that the benchmark
works, never how fast anything is.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, table

from db.session import make_engine
from tests.harness.kafka import TestKafka
from tests.harness.s3 import LocalS3

# Each one a subprocess of seconds to minutes: scheduled first (tests/conftest.py).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 240.0  # seconds; a hung benchmark fails instead of stalling the suite
_API_VERSION_ENV = "DRIFTWATCH_KAFKA__API_VERSION"


class BenchFailed(AssertionError):
    """The benchmark exited non-zero, timed out, or printed an unexpected last line."""


def last_line(
    argv: list[str], env: dict[str, str], pattern: str, timeout: float = TIMEOUT
) -> re.Match[str]:
    """Run ``argv`` from the repository root; its last output line, matched whole."""
    try:
        done = subprocess.run(
            argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchFailed(f"{argv[1:]} ran longer than {timeout:.0f} s") from exc
    tail = "\n".join(done.stdout.splitlines()[-5:] + done.stderr.splitlines()[-25:])
    if done.returncode != 0:
        raise BenchFailed(f"{argv[1:]} exited with {done.returncode}:\n{tail}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    found = re.fullmatch(pattern, lines[-1]) if lines else None
    if found is None:
        raise BenchFailed(f"{argv[1:]}: last line does not match {pattern!r}:\n{tail}")
    return found


def bench_env(kafka: TestKafka | None) -> dict[str, str]:
    """This environment, pointing the benchmark at the session's broker when it needs one."""
    env = dict(os.environ)
    env.pop(_API_VERSION_ENV, None)
    if kafka is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap_servers
        if kafka.api_version is not None:
            env[_API_VERSION_ENV] = ".".join(str(part) for part in kafka.api_version)
    return env


def run_bench(
    script: str,
    kafka: TestKafka | None,
    pattern: str,
    *options: str,
    timeout: float = TIMEOUT,
) -> re.Match[str]:
    argv = [sys.executable, str(REPO / "bench" / script), "--quick", *options]
    return last_line(argv, bench_env(kafka), pattern, timeout)


@pytest.mark.kafka
def test_ingest(kafka: TestKafka) -> None:
    # Both sides' CPU is measured (the bare consumer in its own process), so its ratio
    # is printed beside the wall-clock one; the figures of a quick run mean nothing.
    run_bench(
        "ingest.py",
        kafka,
        r"ingest: \d+ events/s \(\d+\.\d\d of bare consumer, \d+\.\d\d CPU\); "
        r"archive on: \d+ events/s \(\d+\.\d\d of bare consumer, \d+\.\d\d CPU\)",
    )


@pytest.mark.kafka
def test_ingest_stages(kafka: TestKafka) -> None:
    # Each cut-down run must still read and commit every event (the child checks it).
    run_bench(
        "ingest.py",
        kafka,
        r"stages: bare consumer \d+\.\d\d; polling \d+\.\d\d \(\d+\.\d\d\); "
        r"\+ decoding \d+\.\d\d \(\d+\.\d\d\); full \d+\.\d\d \(\d+\.\d\d\); "
        r"archive on \d+\.\d\d \(\d+\.\d\d\) CPU s per million events",
        "--stages",
    )


@pytest.mark.kafka
def test_chaos_ingest(kafka: TestKafka) -> None:
    found = run_bench(
        "chaos_ingest.py",
        kafka,
        r"chaos_ingest: lost=(\d+) duplicated=(\d+) kills=(\d+) "
        r"labels_lost=(\d+) labels_duplicated=(\d+) "
        r"archive_lost=(\d+) archive_duplicated=(\d+)",
    )
    # The exactly-once claim is what this benchmark exists for; a quick run must hold it too.
    assert found.groups() == ("0", "0", "1", "0", "0", "0", "0")


@pytest.mark.kafka
def test_memory(kafka: TestKafka) -> None:
    run_bench(
        "memory.py",
        kafka,
        r"memory: 10000 events in one window, RSS grew \d+\.\d MB after warm-up "
        r"\(median of 2 rounds, \d+\.\d-\d+\.\d; bare consumer: \d+\.\d MB\)",
    )


@pytest.mark.kafka
def test_concept_drift(kafka: TestKafka) -> None:
    found = run_bench(
        "concept_drift.py",
        kafka,
        r"concept_drift: detected after (\d+) labeled events, false_alarms=(\d+)",
    )
    assert int(found.group(1)) <= 3000, "n counts the labelled events after the change"
    assert found.group(2) == "0", "the seeded stationary stretch raises no alarm"


@pytest.mark.kafka
def test_closed_loop(kafka: TestKafka) -> None:
    found = run_bench(
        "closed_loop.py",
        kafka,
        r"closed_loop\[interaction\]: champion (\d+\.\d)% before drift, (\d+\.\d)% after; "
        r"candidate (\d+\.\d)% \((\d\.\d{3}) of pre-drift\); "
        r"onset→run (\d+\.\d) s, onset→verdict (\d+\.\d) s; "
        r"promoted (\d+\.\d) s after onset; "
        r"accuracy after promotion (\d+\.\d)% \((\d\.\d{3}) of pre-drift\)",
        # The loop runs on the wall clock (a history, then a live stream through the
        # rollout's steps): longer than the other benches, and its time target is
        # the full bench's to report, not this smoke test's.
        "--promoted-within",
        "0",
        timeout=600.0,
    )
    assert float(found.group(4)) >= 0.98, "the retrained candidate gets the pre-drift accuracy back"
    assert float(found.group(5)) <= float(found.group(6)), "a verdict comes after its run"
    assert float(found.group(6)) <= float(found.group(7)), "a promotion comes after the verdict"


@pytest.mark.kafka
def test_label_delay(kafka: TestKafka) -> None:
    found = run_bench(
        "label_delay.py",
        kafka,
        r"label_delay: pending_max=(\d+) \(horizon ~(\d+), 1-day TTL ~\d+\) "
        # A quick run's phase may see no flush on a loaded host: its figures are "-".
        r"flush_ms early mean/p50/p99=[\d-]+/[\d-]+/[\d-]+ "
        r"late mean/p50/p99=[\d-]+/[\d-]+/[\d-]+ "
        r"late_joined=(\d+)/(\d+) lost=(\d+) duplicated=(\d+) kills=1",
    )
    assert found.group(3) == found.group(4), "every late label joined, once"
    assert found.group(5) == found.group(6) == "0"


@pytest.mark.kafka
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_scale_models(kafka: TestKafka, database: str, request: pytest.FixtureRequest) -> None:
    # On PostgreSQL each size runs in a scratch database of the URL's server; the
    # database the URL names (here a migrated one) keeps its tables and rows.
    options: list[str] = []
    if database == "postgresql":
        url = request.getfixturevalue("pg_url")
        options = ["--db", url]
        before = _tables(url)
    num = r"\d+(?:\.\d+)?"
    size = (
        rf"(\d+) models: flush p50 {num} ms p99 {num} ms \((\d+) rows/flush\), "
        rf"ingest {num} us CPU/event, tick {num} s, "
        rf"rows/window (\d+), RSS {num} MB"
    )
    found = run_bench(
        "scale_models.py",
        kafka,
        rf"scale: {size}; {size}; growth \(linear = 2\.0\): "
        rf"flush p99 {num}, tick {num}, rows ({num}), RSS {num}",
        *options,
    )
    if database == "postgresql":
        assert _tables(url) == before, "the database --db names is left as it was"
    few, few_flush, few_rows, many, many_flush, many_rows, rows_growth = found.groups()
    assert (few, many) == ("4", "8")
    # Each flush holds one window of every model version in every partition, at both sizes.
    assert (int(few_flush), int(many_flush)) == (4 * 3 * 3, 8 * 3 * 3)
    # Every model version writes the same rows per closed window: twice the models, twice
    # the rows, exactly (the bench checks each size's report count itself).
    assert int(many_rows) == 2 * int(few_rows)
    assert rows_growth == "2.0"


def _tables(url: str) -> dict[str, int]:
    """Each table of ``url``'s database with its row count."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
            return {
                n: int(conn.execute(select(func.count()).select_from(table(n))).scalar_one())
                for n in names
            }
    finally:
        engine.dispose()


@pytest.mark.kafka
def test_flush_spacing(kafka: TestKafka) -> None:
    side = r"\d+ us CPU/event, (\d+) flushes, \d+ events/s"
    found = run_bench(
        "flush_spacing.py",
        kafka,
        rf"flush_spacing: 4 models, 600 events: back to back {side}; spaced {side}; "
        r"CPU per event \d+\.\d\d of back to back, read rate \d+\.\d\dx",
    )
    # Both sides flushed (at least their final flush): each read the backlog and committed.
    assert all(int(n) >= 1 for n in found.groups())


def test_archive_log() -> None:
    ms = r"\d+\.\d"
    found = run_bench(
        "archive_log.py",
        None,
        rf"archive_log: 300 appends per table; Delta defaults: {ms} -> {ms} ms/append "
        rf"\((\d+) log entries\); driftwatch: {ms} -> {ms} ms/append \((\d+) log entries\); "
        r"last/first: \d+\.\d\d vs \d+\.\d\d",
    )
    defaults, driftwatch = (int(n) for n in found.groups())
    # A log entry per append under Delta's defaults; the quick run's retention of zero
    # leaves driftwatch's table only what its last checkpoint does not cover.
    assert defaults > 300
    assert driftwatch < 100


def test_archive_requests(s3_server: LocalS3) -> None:
    # The benchmark starts a server of its own; the fixture fails (or skips) the test as
    # every S3 test is when `make s3-server` has not installed one.
    kinds = r"LIST \d+\.\d\d, PUT \d+\.\d\d, GET \d+\.\d\d, other \d+\.\d\d"
    found = run_bench(
        "archive_requests.py",
        None,
        r"archive_requests: 12 appends of 20 rows; per append: (\d+\.\d\d) requests "
        r"\(LIST \d+\.\d\d, PUT (\d+\.\d\d), GET \d+\.\d\d, other \d+\.\d\d\); "
        rf"with compaction every \d+: (\d+\.\d\d) requests \({kinds}\) when each ends before "
        rf"the next flush, (\d+\.\d\d) \({kinds}\) when flushes come back to back",
    )
    total, puts, spaced, busy = (float(n) for n in found.groups())
    # Every append writes a data file and a log entry; the quick run never compacts.
    assert puts >= 2.0
    assert total > puts
    assert spaced == busy == total


def test_archive_compaction() -> None:
    found = run_bench(
        "archive_compaction.py",
        None,
        r"archive_compaction: 60 appends of 50 events; append p50/p99/max \d+/\d+/\d+ ms "
        r"compacting inside it at Delta's default, \d+/\d+/\d+ at (\d+) MiB; beside it "
        r"\d+/\d+/\d+ back to back, \d+/\d+/\d+ 0.02 s apart \(p99 \d+\.\d\d and \d+\.\d\d of "
        r"inside\); Parquet written \d+, \d+, \d+, \d+ MB",
    )
    assert int(found.group(1)) == 16


def test_drift_vs_evidently() -> None:
    run_bench(
        "drift_vs_evidently.py",
        None,
        r"drift_eval: \d+\.\dx faster than Evidently, agreement \d+\.\d%",
    )


def test_caps() -> None:
    run_bench(
        "caps.py",
        None,
        r"caps: \d+\.\d MiB peak state with caps \(\d+\.\d\d of uncapped \d+\.\d MiB\)",
    )


def test_sketch_rows() -> None:
    ratio = r"\d+\.\d\d"
    ratios = rf"update {ratio} of numpy, to_bytes {ratio} of format 3, from_bytes {ratio}, "
    ratios += r"bytes (\d+\.\d\d)"
    found = run_bench(
        "sketch_rows.py",
        None,
        rf"sketch_rows: 3 events/batch: {ratios}; 8 events/batch: {ratios}; "
        rf"2000 events/batch: {ratios}",
    )
    # Sizes are not timings: narrow counts make every row smaller, whatever the machine.
    assert all(float(r) < 1.0 for r in found.groups())


def test_scale_models_refuses_a_database_that_is_not_postgresql_without_echoing_it() -> None:
    argv = [sys.executable, str(REPO / "bench" / "scale_models.py"), "--quick", "--db"]
    argv.append("sqlite:///tmp/secret-x.db")
    done = subprocess.run(
        argv, check=False, env=bench_env(None), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "--db takes a PostgreSQL server's URL" in done.stderr
    assert "secret" not in done.stderr + done.stdout


def test_a_crash_fails_the_smoke_test() -> None:
    argv = [sys.executable, "-c", "print('ingest: 5 events/s (0.50 of bare consumer)'); 1 / 0"]
    with pytest.raises(BenchFailed, match="ZeroDivisionError"):
        last_line(argv, bench_env(None), r"ingest: \d+ events/s \(\d+\.\d\d of bare consumer\)")


def test_a_malformed_last_line_fails_the_smoke_test() -> None:
    argv = [sys.executable, "-c", "print('ingest: 5 events/s'); print('done')"]
    with pytest.raises(BenchFailed, match="last line does not match"):
        last_line(argv, bench_env(None), r"ingest: \d+ events/s \(\d+\.\d\d of bare consumer\)")
