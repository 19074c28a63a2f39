"""The driftwatch command line, run in-process through main()."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import inspect

from db.migrate import current_revision, head_revision
from db.repositories import WindowAggregateRepository, WindowDelta, WindowKey
from db.session import make_engine, make_session_factory
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import WindowBatch, WindowSketch
from service.cli.main import configure_logging, main


@pytest.fixture(autouse=True)
def _no_driftwatch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads os.environ; keep the caller's DRIFTWATCH_* out of these tests."""
    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


def config(url: str = "sqlite:///unused.db", **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "database": {"url": url},
        "metrics": {"port": 0},
        "models": {
            "fraud": {"window": "1m", "features": {"amount": {"type": "numerical"}}},
            "churn": {"window": "1h", "features": {"plan": {"type": "categorical"}}},
        },
    }
    raw.update(extra)
    return raw


def write(tmp_path: Path, raw: Any) -> str:
    path = tmp_path / "driftwatch.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return str(path)


def test_check_config_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, config())
    assert main(["check-config", path]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (2 model(s): fraud, churn)\n"
    assert err == ""


def test_check_config_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = config(bogus=1)
    del raw["kafka"]["bootstrap_servers"]
    raw["models"]["fraud"]["window"] = "later"
    path = write(tmp_path, raw)
    assert main(["check-config", path]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert sorted(err.splitlines()) == [
        "config: bogus: unknown key",
        "config: kafka.bootstrap_servers: missing; expected a list of host:port strings",
        "config: models.fraud.window: expected a duration such as 30s, 5m or 1h",
    ]
    assert err.endswith("\n")


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.yaml"
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err == f"config: cannot read {path}: No such file or directory\n"


def test_check_config_reads_environment_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, config())
    monkeypatch.setenv("DRIFTWATCH_KAFKA__CONSUMER__ENABLE_AUTO_COMMIT", "true")
    assert main(["check-config", path]) == 2
    assert capsys.readouterr().err == (
        "config: kafka.consumer: ['enable_auto_commit'] are set by driftwatch itself "
        "and cannot be overridden\n"
    )


def test_db_upgrade_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "fresh.db"
    path = write(tmp_path, config(f"sqlite:///{db}"))
    assert main(["db", "upgrade", "--config", path]) == 0
    assert capsys.readouterr().out == f"database at revision {head_revision()}\n"
    engine = make_engine(f"sqlite:///{db}")
    try:
        assert current_revision(engine) == head_revision()
        assert {"alembic_version", "consumer_offsets", "window_aggregates"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
    # Running it again is harmless.
    assert main(["db", "upgrade", "--config", path]) == 0
    assert capsys.readouterr().out == f"database at revision {head_revision()}\n"


def test_db_upgrade_config_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("DRIFTWATCH_CONFIG", write(tmp_path, config(f"sqlite:///{db}")))
    assert main(["db", "upgrade"]) == 0
    assert db.exists()


def test_windows_json_on_an_empty_database(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, config(sqlite_url))
    assert main(["windows", "--json", "--config", path]) == 0
    out, err = capsys.readouterr()
    assert out == "[]\n"
    assert json.loads(out) == []
    assert err == ""


def _seed_window(url: str) -> None:
    spec = ModelSpec(
        "fraud",
        (FeatureSpec("amount", FeatureKind.NUMERICAL),),
        PredictionSpec(PredictionKind.NUMERICAL),
        60,
    )
    engine = make_engine(url)
    now = datetime(2026, 11, 21, tzinfo=UTC)
    try:
        with make_session_factory(engine).begin() as s:
            repo = WindowAggregateRepository(s)
            for partition, n in ((0, 2), (1, 3)):
                sketch = WindowSketch.empty(spec)
                sketch.update(WindowBatch(n, {"amount": [1.0] * n}, [0.5] * n))
                key = WindowKey("fraud", "v1", 1_800_000_000, 60, partition)
                repo.add(key, WindowDelta(sketch, late=partition), now)
    finally:
        engine.dispose()


def test_windows_json_lists_windows(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_window(sqlite_url)
    path = write(tmp_path, config(sqlite_url))
    assert main(["windows", "--json", "--config", path]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {
            "model": "fraud",
            "model_version": "v1",
            "window_start": "2027-01-15T08:00:00+00:00",
            "events": 5,
            "late": 1,
        }
    ]
    assert main(["windows", "--json", "--model", "churn", "--config", path]) == 0
    assert capsys.readouterr().out == "[]\n"


def test_windows_table(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed_window(sqlite_url)
    path = write(tmp_path, config(sqlite_url))
    assert main(["windows", "--config", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "version", "window", "start", "(UTC)", "events", "late"]
    assert lines[1].split() == ["fraud", "v1", "2027-01-15", "08:00:00", "5", "1"]
    assert lines[2].split() == ["total", "5", "1"]
    assert len(lines) == 3


def test_commands_without_a_config_report_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["windows"]) == 2
    assert capsys.readouterr().err == (
        "config: no file given (use --config FILE or DRIFTWATCH_CONFIG)\n"
    )


def test_run_refuses_an_unmigrated_database_and_names_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, config(f"sqlite:///{tmp_path / 'empty.db'}"))
    assert main(["run", "--config", path]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("driftwatch: database schema is at revision none")
    assert err.endswith(f"run: driftwatch db upgrade --config {path}")


def test_run_stops_when_no_broker_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kafka = {"bootstrap_servers": [f"127.0.0.1:{port}"], "startup_timeout": "1s"}
    path = write(tmp_path, config(f"sqlite:///{tmp_path / 'db.sqlite'}", kafka=kafka))
    assert main(["db", "upgrade", "--config", path]) == 0
    assert main(["run", "--config", path]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"driftwatch: cannot reach Kafka at 127.0.0.1:{port} within")
    assert "kafka.startup_timeout (1s)" in err


def test_run_stops_when_the_metrics_port_is_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        metrics = {"host": "127.0.0.1", "port": port}
        path = write(tmp_path, config(f"sqlite:///{tmp_path / 'db.sqlite'}", metrics=metrics))
        assert main(["run", "--config", path]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"driftwatch: cannot serve metrics on 127.0.0.1:{port}")
    assert "(metrics.host, metrics.port)" in err


@pytest.mark.parametrize(
    "command",
    [
        ["windows"],
        ["reference", "list"],
        ["reference", "build", "--model", "fraud", "ref.csv"],
        ["evaluate"],
        ["reports"],
        ["performance"],
        ["report", "show", "1"],
        ["report", "html", "1", "-o", "r.html"],
    ],
)
def test_every_command_reading_the_database_names_the_migration_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    path = write(tmp_path, config(f"sqlite:///{tmp_path / 'empty.db'}"))
    assert main([*command, "--config", path]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("driftwatch: database schema is at revision none (empty database)")
    assert err.strip().endswith(f"run: driftwatch db upgrade --config {path}")


def test_the_migration_hint_names_the_config_file_given_by_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, config(f"sqlite:///{tmp_path}/e.db"))
    monkeypatch.setenv("DRIFTWATCH_CONFIG", path)
    assert main(["windows"]) == 1
    assert capsys.readouterr().err.strip().endswith(f"run: driftwatch db upgrade --config {path}")


@pytest.mark.postgres
def test_a_plain_postgresql_url_works_with_the_installed_driver(
    pg_databases: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_databases.create()
    assert url.startswith("postgresql+psycopg://")
    plain = "postgresql://" + url.removeprefix("postgresql+psycopg://")
    path = write(tmp_path, config(plain))
    assert main(["db", "upgrade", "--config", path]) == 0
    assert main(["windows", "--json", "--config", path]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "[]"


def test_run_logs_its_database_without_the_password_and_its_brokers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kafka = {"bootstrap_servers": [f"127.0.0.1:{port}"], "startup_timeout": "1s"}
    url = "postgresql://driftwatch:s3cret@127.0.0.1:1/dw"
    path = write(tmp_path, config(url, kafka=kafka))
    caplog.set_level(logging.INFO, logger="driftwatch")
    assert main(["run", "--config", path]) == 1  # the database is not there
    started = [r.getMessage() for r in caplog.records if r.name == "driftwatch"]
    assert started[0] == (
        "database postgresql+psycopg://driftwatch:***@127.0.0.1:1/dw, "
        f"Kafka brokers 127.0.0.1:{port}, config {path}"
    )
    assert "s3cret" not in caplog.text


@pytest.fixture
def _restore_log_levels() -> Iterator[None]:
    names = ["", "apscheduler", "kafka", "kafka.producer"]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("_restore_log_levels")
def test_the_schedulers_per_run_lines_stay_out_of_an_info_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    caplog.set_level(logging.INFO)
    configure_logging("INFO")
    ran = threading.Event()
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(ran.set, "interval", seconds=3600, next_run_time=datetime.now(UTC))
    scheduler.start()
    try:
        assert ran.wait(30)
    finally:
        scheduler.shutdown(wait=True)
    scheduler_lines = [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler")]
    assert not [line for line in scheduler_lines if "executed successfully" in line]
    assert logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.WARNING)
    configure_logging("DEBUG")
    assert logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.INFO)


@pytest.mark.usefixtures("_restore_log_levels")
def test_log_levels_set_single_loggers_over_the_defaults() -> None:
    # kafka.producer: a logger the suite's conftest leaves at its default.
    configure_logging("INFO")
    assert not logging.getLogger("kafka.producer").isEnabledFor(logging.INFO)
    configure_logging("INFO", {"kafka.producer": "INFO"})
    assert logging.getLogger("kafka.producer").isEnabledFor(logging.INFO)
    assert not logging.getLogger("kafka.conn").isEnabledFor(logging.INFO)
    configure_logging("INFO", {"kafka": "ERROR"})
    assert not logging.getLogger("kafka").isEnabledFor(logging.WARNING)
