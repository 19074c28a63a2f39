"""Performance verdicts queue their alerts in the report's transaction."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertOutbox
from service.monitoring.performance import ReferenceValue
from tests.unit.service.test_performance import T, advance, alarm, fill, report


def test_degradation_and_concept_drift_each_fire_with_their_report(
    sessions: sessionmaker[Session],
) -> None:
    fill(sessions, correct=150, wrong=50, unlabeled=0)
    alarm(sessions, "rule", T + 1.5)
    advance(sessions, predictions=T + 700, labels=T + 700)
    row = report(sessions, ReferenceValue(accuracy=0.9), True)
    assert (row.degraded, row.concept_drift) == (True, True)
    with sessions() as s:
        events = [(e.kind, e.model, json.loads(e.payload)) for e in AlertOutbox(s).events()]
    assert [(k, m, p["action"], p["report_id"]) for k, m, p in events] == [
        ("performance_degradation", "fraud", "trigger", row.id),
        ("concept_drift", "fraud", "trigger", row.id),
    ]


def test_a_window_without_a_verdict_queues_nothing(sessions: sessionmaker[Session]) -> None:
    fill(sessions, correct=40, wrong=10, unlabeled=0)
    advance(sessions, predictions=T + 700, labels=T + 700)
    row = report(sessions, ReferenceValue(accuracy=0.9), False)
    assert (row.degraded, row.concept_drift) == (None, None)
    with sessions() as s:
        assert AlertOutbox(s).events() == []
