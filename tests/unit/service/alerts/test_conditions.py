"""Alerts caused by verdicts: written in the report's transaction, fired once, resolved once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from db.errors import StoreError
from db.outbox import AlertOutbox
from db.reports import DriftReportRepository
from db.session import transaction
from service.alerts.base import dedup_key
from service.alerts.conditions import DATA_DRIFT, condition
from tests.unit.service.test_evaluation import (
    T0,
    WINDOW,
    Clock,
    aligned,
    build_profile,
    evaluator,
    ingest,
)

NOW = datetime(2026, 11, 27, tzinfo=UTC)
FAILING_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER no_alerts BEFORE INSERT ON alert_events "
        "BEGIN SELECT RAISE(ABORT, 'alert write failed'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION no_alerts() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'alert write failed'; END $$",
        "CREATE TRIGGER no_alerts BEFORE INSERT ON alert_events "
        "FOR EACH ROW EXECUTE FUNCTION no_alerts()",
    ],
}


def events(sessions: sessionmaker[Session]) -> list[tuple[str, str, str, dict[str, object]]]:
    with sessions() as s:
        return [(e.kind, e.model, e.key, json.loads(e.payload)) for e in AlertOutbox(s).events()]


def test_a_condition_fires_once_and_resolves_once(sessions: sessionmaker[Session]) -> None:
    states = [None, True, True, None, True, False, False, True]
    for i, firing in enumerate(states):
        with transaction(sessions) as s:
            condition(s, "fraud", DATA_DRIFT, firing, f"r{i}", "drift", NOW, {"i": i})
    actions = [(key, p["action"]) for _, _, key, p in events(sessions)]
    assert actions == [
        ("data_drift-r1-trigger", "trigger"),
        ("data_drift-r5-resolve", "resolve"),
        ("data_drift-r7-trigger", "trigger"),
    ]


def test_the_first_confirmed_window_queues_one_drift_alert_naming_its_report(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    ingest(sessions, aligned(sessions), windows=6, drift_at=2 * WINDOW)
    evaluator(sessions, Clock(T0), confirm_windows=3).tick()
    with sessions() as s:
        reports = DriftReportRepository(s).summaries("fraud")
    assert [r.confirmed for r in reports] == [False, False, False, False, True]
    [(kind, model, _, payload)] = events(sessions)
    assert (kind, model, payload["action"]) == (DATA_DRIFT, "fraud", "trigger")
    assert payload["report_id"] == reports[4].id


def test_a_report_whose_alert_cannot_be_written_is_not_stored_either(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    ingest(sessions, aligned(sessions), windows=6, drift_at=2 * WINDOW)
    with engine.begin() as conn:
        for statement in FAILING_TRIGGER[engine.dialect.name]:
            conn.execute(text(statement))
    with pytest.raises(StoreError):
        evaluator(sessions, Clock(T0), confirm_windows=3).tick()
    with sessions() as s:
        reports = DriftReportRepository(s).summaries("fraud")
    # The four unconfirmed windows are stored; the confirmed one rolled back with its alert.
    assert [r.confirmed for r in reports] == [False, False, False, False]


def drift_window(sessions: sessionmaker[Session], i: int, version: str, firing: bool) -> None:
    """One verdict as the evaluators queue it: their details name the model_version."""
    with transaction(sessions) as s:
        details = {"report_id": i, "model_version": version}
        condition(s, "fraud", DATA_DRIFT, firing, f"r{i}", f"drift in {version}", NOW, details)


def test_two_live_versions_never_make_one_alert_fire_and_resolve_in_turn(
    sessions: sessionmaker[Session],
) -> None:
    # A canary beside the stable version: the stable one drifts, the canary is clean.
    for i in range(6):
        drift_window(sessions, 2 * i, "v1", True)
        drift_window(sessions, 2 * i + 1, "v2", False)
    actions = [(p["scope"], p["action"]) for _, _, _, p in events(sessions)]
    assert actions == [("v1", "trigger")]


def test_a_clean_window_of_another_version_does_not_resolve_a_page(
    sessions: sessionmaker[Session],
) -> None:
    drift_window(sessions, 0, "v1", True)
    drift_window(sessions, 1, "v2", False)  # a new version's first, clean window
    drift_window(sessions, 2, "v2", True)
    drift_window(sessions, 3, "v1", False)
    actions = [(p["scope"], p["action"]) for _, _, _, p in events(sessions)]
    assert actions == [("v1", "trigger"), ("v2", "trigger"), ("v1", "resolve")]
    # Each version's pages share nothing downstream: the dedup key names the version.
    keys = {dedup_key("fraud", DATA_DRIFT, p) for _, _, _, p in events(sessions)}
    assert keys == {"fraud/data_drift/v1", "fraud/data_drift/v2"}
