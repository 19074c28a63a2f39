"""Fixtures for the real services the tests talk to.

A missing Kafka or PostgreSQL skips the tests that need it on a developer's
machine, and fails them under CI=true or `make test`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.migrate import upgrade
from db.session import make_engine
from tests.harness.kafka import TestKafka
from tests.harness.postgres import Databases, reachable


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
