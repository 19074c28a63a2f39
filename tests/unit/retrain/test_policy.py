"""The trigger policy on stored reports, alarms and labelled counts (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import (
    ConceptDriftAlarmRow,
    DriftReportRow,
    PerformanceAggregate,
    PerformanceReportRow,
    ReferenceProfileRow,
)
from db.outbox import AlertOutbox
from db.runs import RunRepository
from db.session import transaction
from db.triggers import DecisionRepository, TriggerDecision
from retrain.lifecycle import Phase
from retrain.policy import Decision, TriggerPolicy
from retrain.settings import ModelRetrain
from tests.unit.retrain.support import T0, Clock, model_settings

W = timedelta(minutes=5)


def add_drift(
    sessions: sessionmaker[Session], drifted: list[bool], end: datetime = T0
) -> list[int]:
    """Drift reports of consecutive windows ending at ``end``, oldest first."""
    with transaction(sessions) as s:
        profile = s.scalars(select(ReferenceProfileRow)).first()
        if profile is None:
            profile = ReferenceProfileRow(
                model="fraud", version=1, source="x", rows=10, profile=b"", created_at=T0
            )
            s.add(profile)
            s.flush()
        rows = [
            DriftReportRow(
                model="fraud",
                model_version="v1",
                window_start=end - W * (len(drifted) - i),
                window_end=end - W * (len(drifted) - i - 1),
                profile_id=profile.id,
                profile_version=1,
                source="sketch",
                events=100,
                reference_rows=10,
                features_drifted=2 if d else 0,
                features_judged=2,
                dataset_drift=d,
                confirmed=d,
                created_at=T0,
            )
            for i, d in enumerate(drifted)
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def add_degraded(sessions: sessionmaker[Session], start: datetime) -> int:
    with transaction(sessions) as s:
        row = PerformanceReportRow(
            model="fraud",
            model_version="v1",
            window_start=start,
            window_end=start + W,
            task="classification",
            predicted=300,
            labeled=300,
            unlabeled=0,
            degraded=True,
            verdict="accuracy 0.70 below the reference 0.81",
            sketch=b"",
            created_at=T0,
        )
        s.add(row)
        s.flush()
        return row.id


def add_alarm(sessions: sessionmaker[Session]) -> int:
    with transaction(sessions) as s:
        row = ConceptDriftAlarmRow(
            model="fraud",
            model_version="v1",
            partition=0,
            detector="adwin",
            prediction_time=T0 - W,
            label_time=T0 - W,
            labeled=500,
            created_at=T0,
        )
        s.add(row)
        s.flush()
        return row.id


def add_labels(sessions: sessionmaker[Session], start: datetime, labeled: int) -> None:
    with transaction(sessions) as s:
        s.add(
            PerformanceAggregate(
                model="fraud",
                model_version="v1",
                window_start=start,
                window_end=start + W,
                partition=0,
                layout="x",
                predicted=labeled,
                labeled=labeled,
                unlabeled=0,
                sketch=b"",
                updated_at=T0,
            )
        )


def policy(sessions: sessionmaker[Session], clock: Clock, **kw: Any) -> TriggerPolicy:
    kw.setdefault("drift_windows", 3)
    return TriggerPolicy(sessions, {"fraud": model_settings(**kw)}, clock)


def decisions(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with transaction(sessions) as s:
        return [(d.cause_kind, d.decision, d.reason) for d in DecisionRepository(s).decisions()]


def finish(sessions: sessionmaker[Session], run_id: int, now: datetime) -> None:
    with transaction(sessions) as s:
        run = RunRepository(s).get(run_id)
        assert run is not None
        RunRepository(s).enter(run, Phase.ACCEPTED, "done", now, final=True)


def test_drift_in_k_consecutive_windows_fires_once_and_links_its_reports(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    ids = add_drift(sessions, [False, True, True])
    p = policy(sessions, clock)
    assert p.tick() == []  # two drifted windows are not three
    more = add_drift(sessions, [True], end=T0 + W)  # the fourth window, newest
    made = p.tick()
    assert [(d.cause, d.decision) for d in made] == [("drift", "fired")]
    assert p.tick() == []  # a repeated tick: the cause is decided
    with transaction(sessions) as s:
        decision = DecisionRepository(s).for_run(made[0].run_id or -1)
        assert decision is not None
        assert decision.drift_report_id == more[0]
        assert sorted(decision.evidence_ids["drift_reports"]) == sorted([ids[1], ids[2], more[0]])
        assert len(RunRepository(s).runs("fraud")) == 1


def test_causes_during_a_run_and_its_cooldown_are_suppressed_and_stored_with_why(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    p = policy(sessions, clock, drift_windows=0)
    add_degraded(sessions, T0 - 3 * W)
    (first,) = p.tick()
    assert first.decision is TriggerDecision.FIRED and first.run_id is not None
    add_alarm(sessions)
    (during,) = p.tick()
    assert (during.cause, during.decision) == ("concept_alarm", TriggerDecision.SUPPRESSED)
    assert during.reason == f"run {first.run_id} is active (pending)"
    finish(sessions, first.run_id, clock.now)
    clock.advance(minutes=30)
    add_degraded(sessions, T0 - 2 * W)
    (cooling,) = p.tick()
    assert cooling.decision is TriggerDecision.SUPPRESSED
    assert cooling.reason.startswith("cooldown: the last run")
    clock.advance(minutes=31)
    add_degraded(sessions, T0 - W)
    (after,) = p.tick()
    assert after.decision is TriggerDecision.FIRED
    assert [d[:2] for d in decisions(sessions)] == [
        ("degradation", "fired"),
        ("concept_alarm", "suppressed"),
        ("degradation", "suppressed"),
        ("degradation", "fired"),
    ]


def test_too_few_new_labels_since_the_last_runs_data_suppresses(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    p = policy(sessions, clock, drift_windows=0, min_new_labels=1000, cooldown=timedelta(0))
    add_labels(sessions, T0 - 9 * W, 1500)
    add_degraded(sessions, T0 - 9 * W)
    (first,) = p.tick()
    assert first.decision is TriggerDecision.FIRED and first.run_id is not None
    finish(sessions, first.run_id, clock.now)
    add_labels(sessions, T0 - 2 * W, 400)  # after the first run's data ends
    add_degraded(sessions, T0 - 2 * W)
    (second,) = p.tick()
    assert second.decision is TriggerDecision.SUPPRESSED
    assert second.reason.startswith("400 new labelled events since ")
    assert second.reason.endswith(", 1000 needed")


def test_two_causes_in_one_tick_start_one_run(sessions: sessionmaker[Session]) -> None:
    add_drift(sessions, [True, True, True])
    add_degraded(sessions, T0 - W)
    made = policy(sessions, Clock()).tick()
    assert [(d.cause, d.decision) for d in made] == [
        ("drift", "fired"),
        ("degradation", "suppressed"),
    ]
    assert made[1].reason == f"run {made[0].run_id} started this tick by cause drift"


def test_replicas_deciding_the_same_cause_start_one_run(sessions: sessionmaker[Session]) -> None:
    add_drift(sessions, [True, True, True])
    clock = Clock()
    a, b = policy(sessions, clock), policy(sessions, clock)
    made = a.tick() + b.tick() + a.tick()
    assert [d.decision for d in made] == ["fired"]
    with transaction(sessions) as s:
        assert len(RunRepository(s).runs("fraud")) == 1


def test_cron_fires_once_per_fire_time(sessions: sessionmaker[Session]) -> None:
    clock = Clock(T0 + timedelta(minutes=7))  # 12:07
    p = policy(sessions, clock, drift_windows=0, cron="*/5 * * * *", cooldown=timedelta(0))
    (first,) = p.tick()
    assert (first.cause, first.key, first.decision) == (
        "cron",
        "2026-11-27T12:05:00+00:00",
        "fired",
    )
    assert p.tick() == []
    assert first.run_id is not None
    finish(sessions, first.run_id, clock.now)
    clock.advance(minutes=4)  # 12:11: the 12:10 fire time is due
    (second,) = p.tick()
    assert (second.key, second.decision) == ("2026-11-27T12:10:00+00:00", "fired")


def test_a_manual_request_during_a_run_starts_nothing_and_says_which(
    sessions: sessionmaker[Session],
) -> None:
    p = policy(sessions, Clock(), drift_windows=0, min_new_labels=10**9)
    first = p.request("fraud", "new features")
    # Manual requests skip the label and cooldown guards.
    assert first.decision is TriggerDecision.FIRED
    second = p.request("fraud", "again")
    assert (second.decision, second.reason) == ("suppressed", f"run {first.run_id} is active")


def test_labels_from_before_the_change_began_do_not_count(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    p = policy(sessions, clock, drift_windows=2, min_new_labels=1000, on_concept_alarm=False)
    add_labels(sessions, T0 - 10 * W, 5000)  # the old world, plentifully labelled
    add_drift(sessions, [False, True, True], end=T0 - W)  # drift from the window at T0 - 3W
    add_labels(sessions, T0 - 2 * W, 300)
    (early,) = p.tick()
    assert early.decision is TriggerDecision.SUPPRESSED
    assert early.reason == f"300 new labelled events since {(T0 - 3 * W).isoformat()}, 1000 needed"
    add_labels(sessions, T0 - W, 800)
    add_drift(sessions, [True], end=T0)  # the streak goes on: a new cause
    (later,) = p.tick()
    assert (later.cause, later.decision) == ("drift", "fired")


def test_a_cause_held_back_fires_once_its_guards_pass_keeping_why_it_waited(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    p = policy(sessions, clock, drift_windows=0, min_new_labels=1000, on_concept_alarm=False)
    add_degraded(sessions, T0 - 2 * W)
    add_labels(sessions, T0 - 2 * W, 600)
    (held,) = p.tick()
    assert held.decision is TriggerDecision.SUPPRESSED
    assert p.tick() == []  # still too few: nothing new is written
    add_labels(sessions, T0 - W, 600)  # no new report, only labels
    (fired,) = p.tick()
    assert (fired.key, fired.decision) == (held.key, "fired")
    assert fired.reason.endswith(f"(held back before: {held.reason})")
    assert p.tick() == []
    with transaction(sessions) as s:
        (row,) = DecisionRepository(s).decisions()
        assert (row.decision, row.run_id) == ("fired", fired.run_id)


@pytest.mark.parametrize("enabled", [False])
def test_a_disabled_model_decides_nothing(sessions: sessionmaker[Session], enabled: bool) -> None:
    add_drift(sessions, [True, True, True])
    assert policy(sessions, Clock(), enabled=enabled).tick() == []


def test_a_manual_request_repeated_with_its_key_returns_its_first_decision(
    sessions: sessionmaker[Session],
) -> None:
    p = policy(sessions, Clock(), drift_windows=0)
    first = p.request("fraud", "retry-safe", key="req-1")
    other = p.request("fraud", "another request")
    again = p.request("fraud", "retry-safe", key="req-1")
    assert other.decision is TriggerDecision.SUPPRESSED
    # Read back from its row, the repeated decision is the enum, not the stored text.
    assert again == first and again.decision is TriggerDecision.FIRED and again.fired


def test_a_fired_trigger_queues_one_retrain_started_alert_and_a_repeated_tick_none(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    add_drift(sessions, [True, True, True])
    p = policy(sessions, clock)
    made = p.tick()
    assert [(d.cause, d.decision) for d in made] == [("drift", "fired")]
    run_id = made[0].run_id
    assert p.tick() == []
    with transaction(sessions) as s:
        events = AlertOutbox(s).events("fraud")
        assert [(e.kind, e.run_id, e.key) for e in events] == [
            ("retrain_started", run_id, f"run-{run_id}-started")
        ]
        payload = json.loads(events[0].payload)
    assert payload["run_id"] == run_id and payload["trigger"] == "drift"
    assert payload["cause_key"] == made[0].key


class _FailingFor(TriggerPolicy):
    """A policy whose decisions for one model raise, as a bug its data set off would."""

    failing = "aml"

    def _decide(self, session: Session, m: ModelRetrain) -> list[Decision]:
        if m.model == self.failing:
            raise KeyError(m.model)
        return super()._decide(session, m)


def test_a_model_whose_decision_raises_holds_back_no_other(
    sessions: sessionmaker[Session],
) -> None:
    add_drift(sessions, [True, True, True])
    models = {
        "aml": model_settings(model="aml", drift_windows=3),  # decided first, and fails
        "fraud": model_settings(drift_windows=3),
    }
    with pytest.raises(KeyError, match="aml"):
        _FailingFor(sessions, models, Clock()).tick()  # still raised, for the scheduler
    with transaction(sessions) as s:
        assert len(RunRepository(s).runs("fraud")) == 1  # fraud's drift fired its run
