"""Fixtures for the real services the tests talk to.

A missing Kafka or PostgreSQL skips the tests that need it on a developer's
machine, and fails them under CI=true or `make test`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.migrate import upgrade
from db.session import make_engine
from tests.harness.kafka import TestKafka
from tests.harness.postgres import Databases, reachable
from tests.harness.s3 import LocalS3, local_s3, server_python
from tests.harness.scenario import CLIENT_LOG_LEVELS

_sessions: list[pytest.Session] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _sessions.append(session)
    # As in the services the tests start (write_config): a loop run in-process that stops
    # making progress shows the client's group and metadata events in its failure report.
    for name, level in CLIENT_LOG_LEVELS.items():
        logging.getLogger(name).setLevel(level)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process with pytest's own exit status, skipping interpreter teardown.

    Every test has run and been reported by now. What is left is the teardown of
    native thread pools (pyarrow's among them), which now and then aborts a process
    at exit (SIGABRT, apache/arrow#34314) and would turn a green run into exit 134.
    The processes under test are separate and keep their own exits, which the tests check.
    """
    if not _sessions or os.environ.get("DRIFTWATCH_TEST_NORMAL_EXIT") == "1":
        return
    status = int(_sessions[-1].exitstatus)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the ``slow`` modules first, keeping the order otherwise.

    ``make test`` hands whole files to two workers in collection order (pytest-xdist's
    ``loadfile``, its reordering off). The slow ones are end-to-end loops that mostly wait
    on a broker and their subprocesses; started first, they overlap the many short tests on
    the other worker instead of running alone at the end. Every worker sorts the same
    collection the same way, as xdist requires.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _no_job_watch_outlives_its_test() -> Iterator[None]:
    """A Kubernetes Job watch left running retries against an emulator that is gone and
    logs into whichever tests come after it on that worker: each test closes its
    executors (``KubernetesExecutor.close`` waits for the watch's thread)."""
    before = {t for t in threading.enumerate() if t.name == "k8s-jobs"}
    yield
    left = [t for t in threading.enumerate() if t.name == "k8s-jobs" and t not in before]
    assert not left, f"{len(left)} Kubernetes Job watch thread(s) left running"


def _require_services() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("DRIFTWATCH_REQUIRE_SERVICES") == "1"


def _unavailable(what: str) -> None:
    if _require_services():
        pytest.fail(f"{what} (required under CI=true / make test)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestKafka]:
    try:
        broker = TestKafka(tmp_path_factory.mktemp("kafka"))
    except Exception as exc:
        _unavailable(f"no Kafka broker: {exc}")
    yield broker
    broker.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    """moto's S3 server, from ``make s3-server``'s virtualenv."""
    python = server_python()
    if python is None:
        _unavailable("no local S3 server: run `make s3-server`")
        raise AssertionError("unreachable")
    with local_s3(python, tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: LocalS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with this process's AWS_* environment pointing at the server."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"dw-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(bucket)
    return bucket


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Databases]:
    why = reachable()
    if why:
        _unavailable(f"no PostgreSQL: {why}")
    dbs = Databases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def pg_template(pg_databases: Databases) -> str:
    """A migrated database that per-test databases are copied from."""
    url = pg_databases.create()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url.rsplit("/", 1)[1]


@pytest.fixture
def pg_url(pg_databases: Databases, pg_template: str) -> Iterator[str]:
    url = pg_databases.create(template=pg_template)
    yield url
    pg_databases.drop_soon(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'driftwatch.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of each supported kind."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url
