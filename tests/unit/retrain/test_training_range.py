"""A run's data starts where the change began, and a cause fires once the changed world
is labelled: the policy on stored reports, alarms and per-window labelled counts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from db.models import ConceptDriftAlarmRow, PerformanceAggregate
from db.outbox import AlertOutbox
from db.runs import RetrainRunRow, RunRepository
from db.session import transaction
from db.triggers import TriggerDecision
from tests.unit.retrain.support import T0, Clock
from tests.unit.retrain.test_policy import W, add_degraded, add_drift, policy

HOUR = timedelta(hours=1)


def labels(
    sessions: sessionmaker[Session], start: datetime, labeled: int, partition: int = 0
) -> None:
    with transaction(sessions) as s:
        s.add(
            PerformanceAggregate(
                model="fraud",
                model_version="v1",
                window_start=start,
                window_end=start + W,
                partition=partition,
                layout="x",
                predicted=labeled,
                labeled=labeled,
                unlabeled=0,
                sketch=b"",
                updated_at=T0,
            )
        )


def alarm(sessions: sessionmaker[Session], at: datetime) -> None:
    with transaction(sessions) as s:
        s.add(
            ConceptDriftAlarmRow(
                model="fraud",
                model_version="v1",
                partition=0,
                detector="adwin",
                prediction_time=at,
                label_time=at,
                labeled=500,
                created_at=T0,
            )
        )


def run_of(sessions: sessionmaker[Session], run_id: int | None) -> RetrainRunRow:
    with transaction(sessions) as s:
        run = RunRepository(s).get(run_id or -1)
        assert run is not None
        s.expunge(run)
        return run


def degraded_streak(sessions: sessionmaker[Session]) -> None:
    """An hour of windows with 500 labels each up to T0; the last three degraded."""
    for i in range(1, 13):
        labels(sessions, T0 - i * W, 500)
    for i in (3, 2, 1):
        add_degraded(sessions, T0 - i * W)


def fire(sessions: sessionmaker[Session], **kw: object) -> RetrainRunRow:
    kw.setdefault("drift_windows", 0)
    kw.setdefault("on_concept_alarm", False)
    (made,) = policy(sessions, Clock(T0 + W), data_window=HOUR, **kw).tick()
    assert made.decision is TriggerDecision.FIRED, made.reason
    return run_of(sessions, made.run_id)


def test_the_data_starts_at_the_first_degraded_window_of_the_streak(
    sessions: sessionmaker[Session],
) -> None:
    degraded_streak(sessions)
    run = fire(sessions, min_train_rows=1000)
    assert (run.data_from, run.data_to, run.change_onset) == (T0 - 3 * W, T0, T0 - 3 * W)
    assert run.data_note == (
        f"from the change onset {(T0 - 3 * W).isoformat()} (first degraded window of the "
        f"streak) to the newest labelled window's end {T0.isoformat()}; ~1500 labelled rows"
    )


def test_too_few_labels_since_the_onset_widen_the_data_back_window_by_window(
    sessions: sessionmaker[Session],
) -> None:
    degraded_streak(sessions)
    run = fire(sessions, min_train_rows=2200)  # 1500 since the onset: two windows more
    assert (run.data_from, run.change_onset) == (T0 - 5 * W, T0 - 3 * W)
    assert run.data_note is not None
    assert run.data_note.startswith(
        f"widened back to {(T0 - 5 * W).isoformat()} to reach min_train_rows 2200: only 1500 "
        f"labelled rows since the change onset {(T0 - 3 * W).isoformat()}"
    )
    assert run.data_note.endswith("~2500 labelled rows")


def test_widening_stops_at_data_window(sessions: sessionmaker[Session]) -> None:
    degraded_streak(sessions)
    run = fire(sessions, min_train_rows=100_000)
    assert (run.data_from, run.data_to) == (T0 - HOUR, T0)
    assert run.data_note is not None
    assert run.data_note.startswith("widened back to the whole data_window: only 1500 ")
    assert "fewer than min_train_rows 100000" in run.data_note


def test_an_onset_older_than_data_window_is_capped_by_it(sessions: sessionmaker[Session]) -> None:
    for i in range(1, 13):
        labels(sessions, T0 - i * W, 500)
    add_drift(sessions, [True] * 4, end=T0)  # drifted since T0 - 4W
    (made,) = policy(
        sessions, Clock(T0 + W), data_window=2 * W, on_concept_alarm=False, on_degradation=False
    ).tick()
    run = run_of(sessions, made.run_id)
    assert (run.data_from, run.data_to, run.change_onset) == (T0 - 2 * W, T0, T0 - 4 * W)
    assert run.data_note is not None and "(first drifted window of the streak) is older " in (
        run.data_note
    )


def test_a_request_without_onset_takes_the_last_data_window(
    sessions: sessionmaker[Session],
) -> None:
    degraded_streak(sessions)
    made = policy(sessions, Clock(T0 + W), data_window=HOUR).request("fraud", "asked")
    run = run_of(sessions, made.run_id)
    assert (run.data_from, run.data_to, run.change_onset) == (T0 - HOUR, T0, None)
    assert run.data_note is not None
    assert run.data_note.startswith("no change onset (manual): the last data_window, ")


def test_a_concept_alarm_fires_within_the_first_changed_window_once_its_labels_are_joined(
    sessions: sessionmaker[Session],
) -> None:
    for i in range(1, 7):
        labels(sessions, T0 - i * W, 2000)  # the old world, plentifully labelled
    change = T0 + timedelta(minutes=1)
    alarm(sessions, change)
    p = policy(
        sessions,
        Clock(T0 + 2 * timedelta(minutes=1)),
        drift_windows=0,
        on_degradation=False,
        min_new_labels=1000,
        min_train_rows=1000,
        data_window=HOUR,
    )
    labels(sessions, T0, 600)  # the window holding the change, partly labelled
    (held,) = p.tick()
    assert held.decision is TriggerDecision.SUPPRESSED
    assert held.reason == f"600 new labelled events since {change.isoformat()}, 1000 needed"
    labels(sessions, T0, 500, partition=1)  # more of that same window joined
    (fired,) = p.tick()
    assert (fired.cause, fired.decision) == ("concept_alarm", TriggerDecision.FIRED)
    run = run_of(sessions, fired.run_id)
    assert (run.data_from, run.data_to, run.change_onset) == (change, T0 + W, change)
    assert run.data_note is not None and run.data_note.startswith(
        f"from the change onset {change.isoformat()} (first concept-drift alarm since the "
        "last run) to the newest labelled window's end"
    )
    with transaction(sessions) as s:
        (event,) = AlertOutbox(s).events("fraud")
        payload = json.loads(event.payload)
    assert payload["change_onset"] == change.isoformat()
    assert payload["data_note"] == run.data_note
    assert payload["data_from"] == change.isoformat()
