"""The newest alert event of a condition: found by index, whatever other models hold."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from db.migrate import upgrade
from db.outbox import AlertOutbox, last_action
from db.session import make_engine, make_session_factory

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_the_newest_event_of_a_model_is_read_by_index_not_by_a_scan(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'alerts.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        outbox = AlertOutbox(session)
        for m in range(50):
            for n, action in enumerate(("trigger", "resolve", "trigger")):
                payload = {"action": action, "scope": "v1"}
                outbox.add(f"m{m}-{n}", "data_drift", f"model_{m}", "x", NOW, payload=payload)
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        statements.append((sql, params))

    event.listen(engine, "before_cursor_execute", seen)
    with sessions() as session:
        assert last_action(session, "model_7", "data_drift", "v1") == "trigger"
        assert last_action(session, "model_7", "data_drift", "v2") is None
    event.remove(engine, "before_cursor_execute", seen)
    sql, params = next((s, p) for s, p in statements if "alert_events" in s)
    with engine.connect() as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        )
        assert conn.execute(text("SELECT count(*) FROM alert_events")).scalar_one() == 150
    engine.dispose()
    assert "ix_alert_events_model_kind" in plan, plan
    assert "SCAN alert_events" not in plan, plan
