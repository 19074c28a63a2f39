"""Deleting what has outlived its use, one bounded batch at a time.

Each method deletes at most ``limit`` rows of one table (and what the database
cascades from them) and returns how many it deleted; the caller commits each
batch on its own, so a large backlog never holds one long transaction or long
row locks on PostgreSQL. Rows are chosen by id first, then deleted by id, so a
batch is the same on SQLite and PostgreSQL (neither has ``DELETE ... LIMIT``
everywhere).

What is never deleted, whatever its age:

- a window's sketches before the window has a report (it is still to be judged),
  unless the drift evaluation can no longer reach it (see :meth:`unjudged_sketches`);
- a model's newest drift or performance report (the API, the overview page and
  the trigger policy read it), and any report behind a trigger decision that
  started a retrain run (its ``drift_report_id``/``performance_report_id`` and
  every id of its evidence): a run's record keeps what caused it;
- a model's newest concept-drift alarm (the trigger policy's cause is the newest alarm:
  without it an older alarm nobody decided on would become the newest and fire a run),
  and any alarm behind a trigger decision that started a retrain run
  (``concept_alarm_id`` and its evidence);
- an alert event with a delivery still pending, or not yet routed;
- the detector states of a model version that fed any of them a pair since the
  cutoff, or that the registry holds as ``production`` or ``canary``: only the
  versions that stopped sending lose their states (all partitions at once; a
  version that comes back later starts its detectors afresh);
- the newest alert event of each ``<model>/<kind>``, whose action says whether the
  condition is firing, and any event that holds a channel's newest live delivery of
  a ``<model>/<kind>``, which deduplication and re-sending read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from db.errors import translated
from db.idempotency import IdempotencyKeyRow
from db.models import (
    ConceptDriftAlarmRow,
    DetectorStateRow,
    DriftReportRow,
    PerformanceAggregate,
    PerformanceReportRow,
    WindowAggregate,
)
from db.outbox import AlertDeliveryRow, AlertEventRow, DeliveryStatus
from db.registry import ModelVersionRow, Stage
from db.triggers import TriggerDecisionRow

_LIVE = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERED)
_SERVED = (str(Stage.PRODUCTION), str(Stage.CANARY))


@translated
class RetentionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _delete(self, table: type, chosen: Select[Any]) -> int:
        ids = list(self.session.scalars(chosen))
        if ids:
            self.session.execute(delete(table).where(table.id.in_(ids)))  # type: ignore[attr-defined]
        return len(ids)

    def sketches(self, ended_before: datetime, limit: int) -> int:
        """Window sketches of windows that ended before ``ended_before`` and have a drift
        report (any profile): they will not be judged again."""
        return self._reported(WindowAggregate, DriftReportRow, ended_before, limit)

    def unjudged_sketches(self, ended_before: datetime, limit: int, reach: timedelta) -> int:
        """Window sketches no drift evaluation will judge: of windows that ended before
        ``ended_before`` and started more than ``reach`` (``evaluation.backfill``) before
        their model's newest window, the furthest back the evaluator looks. Without this
        a model that never had a reference profile, or a window the evaluator skipped as
        unjudgeable, kept its rows for ever: nothing reports them."""
        w = WindowAggregate
        newest = self.session.execute(select(w.model, func.max(w.window_start)).group_by(w.model))
        ids: list[int] = []
        for model, start in newest.all():
            if len(ids) >= limit:
                break
            chosen = (
                select(w.id)
                .where(
                    w.model == model, w.window_end < ended_before, w.window_start < start - reach
                )
                .order_by(w.id)
                .limit(limit - len(ids))
            )
            ids.extend(self.session.scalars(chosen))
        if ids:
            self.session.execute(delete(w).where(w.id.in_(ids)))
        return len(ids)

    def performance_sketches(self, ended_before: datetime, limit: int) -> int:
        """The joined pairs' sketches of windows that have a performance report."""
        return self._reported(PerformanceAggregate, PerformanceReportRow, ended_before, limit)

    def _reported(self, sketches: Any, reports: Any, ended_before: datetime, limit: int) -> int:
        """Rows of ``sketches`` (a per-partition window table) whose window ended before
        ``ended_before`` and has a row in ``reports`` for its model, version and start."""
        reported = (
            select(reports.id)
            .where(
                reports.model == sketches.model,
                reports.model_version == sketches.model_version,
                reports.window_start == sketches.window_start,
            )
            .exists()
        )
        chosen = (
            select(sketches.id)
            .where(sketches.window_end < ended_before, reported)
            .order_by(sketches.id)
        )
        return self._delete(sketches, chosen.limit(limit))

    def drift_reports(self, ended_before: datetime, limit: int) -> int:
        """Drift reports (with their feature results and rendered HTML, by cascade)."""
        return self._reports(DriftReportRow, "drift_reports", ended_before, limit)

    def performance_reports(self, ended_before: datetime, limit: int) -> int:
        return self._reports(PerformanceReportRow, "performance_reports", ended_before, limit)

    def _reports(
        self,
        table: type[DriftReportRow] | type[PerformanceReportRow],
        evidence_key: str,
        ended_before: datetime,
        limit: int,
    ) -> int:
        newer = aliased(table)
        newest_of_model = (
            select(func.max(newer.window_start)).where(newer.model == table.model).scalar_subquery()
        )
        chosen = (
            select(table.id)
            .where(table.window_end < ended_before, table.window_start < newest_of_model)
            .order_by(table.id)
        )
        kept = self.run_evidence(evidence_key)
        if kept:
            chosen = chosen.where(table.id.not_in(kept))
        return self._delete(table, chosen.limit(limit))

    def concept_drift_alarms(self, predicted_before: datetime, limit: int) -> int:
        """Alarms on pairs predicted before ``predicted_before``: by event time, like the
        reports, so an alarm goes with the reports of its window."""
        a = ConceptDriftAlarmRow
        newer = aliased(ConceptDriftAlarmRow)
        newest_of_model = select(func.max(newer.id)).where(newer.model == a.model).scalar_subquery()
        chosen = (
            select(a.id)
            .where(a.prediction_time < predicted_before, a.id < newest_of_model)
            .order_by(a.id)
        )
        kept = self.run_evidence("concept_drift_alarms")
        if kept:
            chosen = chosen.where(a.id.not_in(kept))
        return self._delete(a, chosen.limit(limit))

    def run_evidence(self, evidence_key: str) -> list[int]:
        """Ids of ``evidence_key`` rows (reports or alarms) behind the decisions that
        started a run."""
        t = TriggerDecisionRow
        column = {
            "drift_reports": t.drift_report_id,
            "performance_reports": t.performance_report_id,
            "concept_drift_alarms": t.concept_alarm_id,
        }[evidence_key]
        ids: set[int] = set()
        for direct, decision in self.session.execute(
            select(column, t).where(t.run_id.is_not(None))
        ):
            if direct is not None:
                ids.add(direct)
            ids.update(decision.evidence_ids.get(evidence_key, ()))
        return sorted(ids)

    def alert_events(self, created_before: datetime, limit: int) -> int:
        """Finished alert events (and their delivered, dead or skipped deliveries)."""
        a, d = AlertEventRow, AlertDeliveryRow
        newer = aliased(AlertEventRow)
        newest_of_condition = (
            select(func.max(newer.id))
            .where(newer.model == a.model, newer.kind == a.kind)
            .scalar_subquery()
        )
        live = aliased(AlertDeliveryRow)
        newest_live = (
            select(func.max(live.id))
            .where(live.status.in_(_LIVE))
            .group_by(live.channel, live.dedup_key)
            .subquery()
        )
        holds_newest = (
            select(d.id).where(d.event_id == a.id, d.id.in_(select(newest_live.c[0]))).exists()
        )
        pending = select(d.id).where(d.event_id == a.id, d.status == DeliveryStatus.PENDING)
        chosen = (
            select(a.id)
            .where(
                a.delivered_at.is_not(None),
                a.created_at < created_before,
                a.id < newest_of_condition,
                ~pending.exists(),
                ~holds_newest,
            )
            .order_by(a.id)
            .limit(limit)
        )
        ids = list(self.session.scalars(chosen))
        if ids:
            # Explicit rather than by cascade: the deliveries go first, in the same batch.
            self.session.execute(delete(d).where(d.event_id.in_(ids)))
            self.session.execute(delete(a).where(a.id.in_(ids)))
        return len(ids)

    def idempotency_keys(self, created_before: datetime, limit: int) -> int:
        """Keys past their expiry: a repeat of the request is then a new request."""
        k = IdempotencyKeyRow
        chosen = select(k.id).where(k.created_at < created_before).order_by(k.id).limit(limit)
        return self._delete(k, chosen)

    def detector_states(self, updated_before: datetime, limit: int) -> int:
        """Detector states of model versions whose every state was last updated before
        ``updated_before`` (the version stopped sending), unless it is served."""
        d, v = DetectorStateRow, ModelVersionRow
        stopped = (
            select(d.model, d.model_version)
            .group_by(d.model, d.model_version)
            .having(func.max(d.updated_at) < updated_before)
        )
        served = (
            select(v.id)
            .where(v.model == d.model, v.version == d.model_version, v.stage.in_(_SERVED))
            .exists()
        )
        key = tuple_(d.model, d.model_version, d.partition, d.detector)
        chosen = (
            select(d.model, d.model_version, d.partition, d.detector)
            .where(tuple_(d.model, d.model_version).in_(stopped), ~served)
            .order_by(d.model, d.model_version, d.partition, d.detector)
            .limit(limit)
        )
        keys = [tuple(row) for row in self.session.execute(chosen)]
        if keys:
            self.session.execute(delete(d).where(key.in_(keys)))
        return len(keys)
