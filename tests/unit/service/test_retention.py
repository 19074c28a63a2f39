"""The retention job on real rows (SQLite and PostgreSQL): each rule deletes what has
outlived ``retention.*`` and never what a rule protects, in bounded batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.idempotency import IdempotencyKeyRow
from db.models import (
    ConceptDriftAlarmRow,
    DriftFeatureRow,
    DriftReportRow,
    PerformanceAggregate,
    PerformanceReportRow,
    ReferenceProfileRow,
    ReportHtmlRow,
    WindowAggregate,
)
from db.outbox import AlertDeliveryRow, AlertEventRow
from db.runs import RetrainRunRow
from db.triggers import TriggerDecisionRow
from service.config.scheduler import RetentionConfig
from service.monitoring.retention import Retention

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def retention(
    sessions: sessionmaker[Session], backfill: float = 86400.0, **settings: Any
) -> Retention:
    return Retention(sessions, RetentionConfig(**settings), backfill, clock=NOW.timestamp)


def ids(session: Session, table: Any) -> set[int]:
    return set(session.scalars(select(table.id)))


def count(session: Session, table: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(table)) or 0)


class Rows:
    """Builds rows with only what the rules read set to something meaningful."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.profiles: dict[str, int] = {}

    def add(self, row: Any) -> Any:
        self.s.add(row)
        self.s.flush()
        return row

    def profile(self, model: str) -> int:
        if model not in self.profiles:
            row = ReferenceProfileRow(
                model=model, version=1, source="ref.csv", rows=10, profile=b"p",
                prediction=None, created_at=ago(400),
            )  # fmt: skip
            self.profiles[model] = self.add(row).id
        return self.profiles[model]

    def drift(self, model: str, days: float, features: int = 0) -> int:
        start = ago(days)
        row = self.add(
            DriftReportRow(
                model=model, model_version="v1", window_start=start, window_end=start + WINDOW,
                profile_id=self.profile(model), profile_version=1, source="sketch", events=10,
                reference_rows=10, features_drifted=0, features_judged=features,
                drifted_share=0.0, dataset_drift=False, confirmed=False, created_at=start,
            )
        )  # fmt: skip
        for i in range(features):
            self.add(
                DriftFeatureRow(
                    report_id=row.id, feature=f"f{i}", position=i, kind="num", method="psi",
                    score=0.0, p_value=None, p_value_adjusted=None, threshold=0.1,
                    drifted=False, reference_count=10, current_count=10,
                    reference_null_share=0.0, current_null_share=0.0, unseen_categories="[]",
                )
            )  # fmt: skip
        return int(row.id)

    def performance(self, model: str, days: float) -> int:
        start = ago(days)
        row = PerformanceReportRow(
            model=model, model_version="v1", window_start=start, window_end=start + WINDOW,
            drift_report_id=None, task="classification", predicted=10, labeled=10, unlabeled=0,
            degraded=False, verdict="ok", sketch=b"s", created_at=start,
        )  # fmt: skip
        return int(self.add(row).id)

    def sketch(self, model: str, days: float, partition: int = 0) -> int:
        start = ago(days)
        row = WindowAggregate(
            model=model, model_version="v1", window_start=start, window_end=start + WINDOW,
            partition=partition, layout="L", event_count=10, late_count=0, sketch=b"s",
            updated_at=start,
        )  # fmt: skip
        return int(self.add(row).id)

    def pairs(self, model: str, days: float) -> int:
        start = ago(days)
        row = PerformanceAggregate(
            model=model, model_version="v1", window_start=start, window_end=start + WINDOW,
            partition=0, layout="L", predicted=10, labeled=10, unlabeled=0, sketch=b"s",
            updated_at=start,
        )  # fmt: skip
        return int(self.add(row).id)

    def alarm(self, model: str, days: float) -> int:
        predicted = ago(days)
        row = ConceptDriftAlarmRow(
            model=model, model_version="v1", partition=0, detector="rule",
            prediction_time=predicted, label_time=predicted + WINDOW, labeled=100,
            baseline_rate=0.1, alarm_rate=0.3, created_at=predicted + WINDOW,
        )  # fmt: skip
        return int(self.add(row).id)

    def run_started_by(self, model: str, **decision: Any) -> int:
        run = self.add(
            RetrainRunRow(
                model=model, phase="accepted", active=False, trigger="drift", reason="r",
                data_from=ago(120), data_to=ago(90), created_at=ago(90), updated_at=ago(90),
            )
        )  # fmt: skip
        evidence = decision.pop("evidence", {})
        self.add(
            TriggerDecisionRow(
                model=model, cause_kind="drift", cause_key=f"k{run.id}", decision="fired",
                reason="", evidence=json.dumps(evidence), run_id=run.id, created_at=ago(90),
                **decision,
            )
        )  # fmt: skip
        return int(run.id)

    def suppressed(self, model: str, kind: str, days: float, **decision: Any) -> None:
        """A decision that started nothing, citing ``evidence`` and the linked ids given."""
        evidence = decision.pop("evidence", {})
        self.add(
            TriggerDecisionRow(
                model=model, cause_kind=kind, cause_key="k", decision="suppressed",
                reason="cooldown", evidence=json.dumps(evidence), run_id=None,
                created_at=ago(days), **decision,
            )
        )  # fmt: skip

    def event(
        self, model: str, kind: str, days: float, delivered: bool, *deliveries: tuple[str, str]
    ) -> int:
        created = ago(days)
        event = self.add(
            AlertEventRow(
                key=f"{model}-{kind}-{days}", kind=kind, model=model, run_id=None, message="m",
                payload="{}", created_at=created, delivered_at=created if delivered else None,
            )
        )  # fmt: skip
        for channel, status in deliveries:
            self.add(
                AlertDeliveryRow(
                    event_id=event.id, channel=channel, dedup_key=f"{model}/{kind}",
                    action="trigger", status=status, attempts=1, next_attempt_at=created,
                    last_error=None, created_at=created, sent_at=created,
                )
            )  # fmt: skip
        return int(event.id)


def test_reports_go_with_their_feature_results_except_the_newest_and_what_runs_cite(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        rows = Rows(s)
        old = rows.drift("fraud", 100, features=3)
        cited = rows.drift("fraud", 95)
        in_evidence = rows.drift("fraud", 93)
        young = rows.drift("fraud", 80)
        newest = rows.drift("fraud", 1)
        only = rows.drift("churn", 200)  # old, but the newest (only) report of churn
        s.add(ReportHtmlRow(model="fraud", report_id=old, html=b"<html>", rendered_at=ago(99)))
        perf_old = rows.performance("fraud", 100)
        perf_cited = rows.performance("fraud", 97)
        perf_newest = rows.performance("fraud", 1)
        perf_only = rows.performance("churn", 200)
        rows.run_started_by(
            "fraud",
            drift_report_id=cited,
            performance_report_id=perf_cited,
            evidence={"drift_reports": [cited, in_evidence]},
        )
    assert retention(sessions).tick()["drift_reports"] == 1
    with sessions() as s:
        assert ids(s, DriftReportRow) == {cited, in_evidence, young, newest, only}
        assert set(s.scalars(select(DriftFeatureRow.report_id))) == set()  # by cascade
        assert count(s, ReportHtmlRow) == 0
        assert ids(s, PerformanceReportRow) == {perf_cited, perf_newest, perf_only}
        assert perf_old not in ids(s, PerformanceReportRow)
    assert retention(sessions).tick() == dict.fromkeys(
        (
            "sketches",
            "performance_sketches",
            "drift_reports",
            "performance_reports",
            "concept_drift_alarms",
            "alert_events",
            "idempotency_keys",
            "detector_states",
            "unjudged_sketches",
        ),
        0,
    )


def test_a_report_cited_only_by_a_suppressed_decision_is_not_kept(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        rows = Rows(s)
        old = rows.drift("fraud", 100)
        rows.drift("fraud", 1)
        rows.suppressed(
            "fraud", "drift", 100, evidence={"drift_reports": [old]}, drift_report_id=old
        )
    retention(sessions).tick()
    with sessions() as s:
        assert old not in ids(s, DriftReportRow)
        (decision,) = s.scalars(select(TriggerDecisionRow))
        assert decision.drift_report_id is None  # the decision stays, its link is cleared


def test_sketches_go_once_their_window_is_reported_and_old_enough(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        rows = Rows(s)
        rows.drift("fraud", 10)
        reported = [rows.sketch("fraud", 10, p) for p in range(3)]
        unreported = rows.sketch("fraud", 12)
        rows.drift("fraud", 2)
        recent = rows.sketch("fraud", 2)
        rows.performance("fraud", 10)
        pairs_reported = rows.pairs("fraud", 10)
        pairs_unreported = rows.pairs("fraud", 12)
    # The unreported window is still within the evaluation's reach (30 days back from
    # the model's newest window).
    done = retention(sessions, backfill=30 * 86400.0, sketches="7d").tick()
    assert (done["sketches"], done["performance_sketches"]) == (3, 1)
    assert done["unjudged_sketches"] == 0
    with sessions() as s:
        assert ids(s, WindowAggregate) == {unreported, recent}
        assert not set(reported) & ids(s, WindowAggregate)
        assert ids(s, PerformanceAggregate) == {pairs_unreported}
        assert pairs_reported not in ids(s, PerformanceAggregate)


def test_sketches_no_evaluation_can_reach_go_reported_or_not(
    sessions: sessionmaker[Session],
) -> None:
    """A model without a reference profile never has a report; its windows go once they
    are older than retention.sketches and further back than evaluation.backfill from the
    model's own newest window, the furthest back its evaluation looks."""
    with sessions.begin() as s:
        rows = Rows(s)
        beyond = [rows.sketch("fraud", 12), rows.sketch("fraud", 10, partition=1)]
        young = rows.sketch("fraud", 6)  # out of reach, but younger than retention.sketches
        newest = rows.sketch("fraud", 1)
        # Another model's reach is from its own newest window: it stopped 20 days ago.
        churn_old, churn_reachable = rows.sketch("churn", 25), rows.sketch("churn", 22)
        churn_newest = rows.sketch("churn", 20)
    job = retention(sessions, backfill=4 * 86400.0, sketches="7d", batch_size=2)
    assert job.tick()["unjudged_sketches"] == 3  # two batches: two, then one
    with sessions() as s:
        assert ids(s, WindowAggregate) == {young, newest, churn_reachable, churn_newest}
        assert not {*beyond, churn_old} & ids(s, WindowAggregate)
    assert job.tick()["unjudged_sketches"] == 0


def test_finished_alert_events_go_but_never_pending_ones_or_what_dedup_reads(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        rows = Rows(s)
        first = rows.event("fraud", "data_drift", 40, True, ("slack", "delivered"))
        resolved = rows.event("fraud", "data_drift", 38, True, ("slack", "delivered"))
        firing = rows.event("fraud", "data_drift", 35, True, ("slack", "delivered"))
        stuck = rows.event("fraud", "run_failed", 60, False, ("slack", "pending"))
        newer_stuck = rows.event("fraud", "run_failed", 1, True, ("slack", "delivered"))
        dead = rows.event("fraud", "retrain_started", 50, True, ("pagerduty", "dead"))
        rows.event("fraud", "retrain_started", 1, True)
        # The channel's newest live delivery of churn/data_drift is the old event's:
        # the newer one was skipped as already firing, so dedup reads the old one.
        live = rows.event("churn", "data_drift", 45, True, ("slack", "delivered"))
        skipped = rows.event("churn", "data_drift", 33, True, ("slack", "skipped"))
        young = rows.event("churn", "run_failed", 10, True, ("slack", "delivered"))
        rows.event("churn", "run_failed", 5, True)
    assert retention(sessions, outbox="30d").tick()["alert_events"] == 3
    with sessions() as s:
        kept = ids(s, AlertEventRow)
        assert {first, resolved, dead} & kept == set()
        assert {firing, stuck, newer_stuck, live, skipped, young} <= kept
        gone = set(s.scalars(select(AlertDeliveryRow.event_id))) & {first, resolved, dead}
        assert gone == set()
        (pending,) = s.scalars(select(AlertDeliveryRow).where(AlertDeliveryRow.event_id == stuck))
        assert pending.status == "pending"


def test_idempotency_keys_expire_and_a_backlog_goes_in_bounded_batches(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        for i in range(5):
            s.add(
                IdempotencyKeyRow(
                    scope="retrain/fraud", key=f"old-{i}", fingerprint="f", status=202,
                    body="{}", created_at=ago(8),
                )
            )  # fmt: skip
        s.add(
            IdempotencyKeyRow(
                scope="retrain/fraud", key="fresh", fingerprint="f", status=202, body="{}",
                created_at=ago(6),
            )
        )  # fmt: skip
    job = retention(sessions, idempotency_keys="7d", batch_size=2, max_batches=2)
    assert job.tick()["idempotency_keys"] == 4  # two batches of two, the rest waits
    assert job.tick()["idempotency_keys"] == 1
    assert job.tick()["idempotency_keys"] == 0
    with sessions() as s:
        assert list(s.scalars(select(IdempotencyKeyRow.key))) == ["fresh"]


def test_alarms_go_except_each_models_newest_and_what_runs_cite(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        rows = Rows(s)
        old = rows.alarm("fraud", 100)
        cited = rows.alarm("fraud", 95)
        in_evidence = rows.alarm("fraud", 93)
        suppressed = rows.alarm("fraud", 92)
        young = rows.alarm("fraud", 80)
        newest = rows.alarm("fraud", 1)
        only = rows.alarm("churn", 200)  # old, but churn's newest (only) alarm
        rows.run_started_by(
            "fraud",
            concept_alarm_id=cited,
            evidence={"concept_drift_alarms": [cited, in_evidence]},
        )
        rows.suppressed(
            "fraud",
            "concept_alarm",
            92,
            evidence={"concept_drift_alarms": [suppressed]},
            concept_alarm_id=suppressed,
        )
    assert retention(sessions, concept_drift_alarms="90d").tick()["concept_drift_alarms"] == 2
    with sessions() as s:
        assert ids(s, ConceptDriftAlarmRow) == {cited, in_evidence, young, newest, only}
        assert {old, suppressed} & ids(s, ConceptDriftAlarmRow) == set()
        links = set(s.scalars(select(TriggerDecisionRow.concept_alarm_id)))
        assert links == {cited, None}  # the suppressed decision stays, its link is cleared
    assert retention(sessions, concept_drift_alarms="90d").tick()["concept_drift_alarms"] == 0


def test_a_backlog_of_alarms_goes_in_bounded_batches(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        rows = Rows(s)
        backlog = [rows.alarm("fraud", 120 - i) for i in range(5)]
        newest = rows.alarm("fraud", 100)  # old too, but the newest: kept
    job = retention(sessions, concept_drift_alarms="90d", batch_size=2, max_batches=2)
    assert job.tick()["concept_drift_alarms"] == 4  # two batches of two, the rest waits
    with sessions() as s:
        assert ids(s, ConceptDriftAlarmRow) == {backlog[4], newest}
    assert job.tick()["concept_drift_alarms"] == 1
    assert job.tick()["concept_drift_alarms"] == 0
    with sessions() as s:
        assert ids(s, ConceptDriftAlarmRow) == {newest}
