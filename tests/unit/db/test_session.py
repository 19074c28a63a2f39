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


def test_postgres_waits_are_bounded_unless_the_url_says_otherwise(pg_url: str) -> None:
    def settings(url: str) -> tuple[str, str, str]:
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                return (
                    connection.exec_driver_sql("SHOW lock_timeout").scalar_one(),
                    connection.exec_driver_sql(
                        "SHOW idle_in_transaction_session_timeout"
                    ).scalar_one(),
                    # libpq's own (client-side) parameter, not the server's setting
                    connection.connection.dbapi_connection.info.get_parameters()[  # type: ignore[union-attr]
                        "tcp_user_timeout"
                    ],
                )
        finally:
            engine.dispose()

    assert settings(pg_url) == ("1min", "10min", "60000")
    mine = "options=-c%20lock_timeout%3D5s&tcp_user_timeout=2000"
    separator = "&" if "?" in pg_url else "?"
    assert settings(f"{pg_url}{separator}{mine}") == ("5s", "10min", "2000")
