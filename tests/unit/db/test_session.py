"""The readiness probe's database check, answered from db/ (no SQL outside it)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from db.session import database_problem, make_engine, make_session_factory


def test_a_database_that_answers_has_no_problem(sessions: sessionmaker[Session]) -> None:
    assert database_problem(sessions) is None


def test_an_unreachable_database_is_named_by_the_errors_kind_only(tmp_path: Path) -> None:
    secret = tmp_path / "no-such-dir" / "p4ssw0rd.db"
    engine = make_engine(f"sqlite:///{secret}")
    try:
        problem = database_problem(make_session_factory(engine))
    finally:
        engine.dispose()
    assert problem == "database unreachable: OperationalError"
