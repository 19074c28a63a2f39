"""Streaming detector state and concept-drift alarms: repositories that flush, never commit.

Detector rows are keyed by (model, version, partition, detector). Like the
join state they belong to the replica owning that partition number, and they
are read and written in the flush transaction: one statement loads every row
a flush touches, one inserts the new ones and one updates the rest.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from db.errors import translated
from db.models import ConceptDriftAlarmRow, DetectorStateRow


class DetectorKey(NamedTuple):
    model: str
    model_version: str
    partition: int
    detector: str


@dataclass(frozen=True, slots=True)
class DetectorState:
    """A detector as stored: the loss it is fed, pairs fed so far, its ``to_state()``."""

    loss: str
    labeled: int
    state: dict[str, Any]


class Alarm(NamedTuple):
    """A detector's drift, raised by one joined pair (times are epoch seconds)."""

    model: str
    model_version: str
    partition: int
    detector: str
    prediction_time: float
    label_time: float
    labeled: int
    baseline_rate: float | None
    alarm_rate: float | None

    def describe(self) -> str:
        rates = ""
        if self.baseline_rate is not None and self.alarm_rate is not None:
            rates = f", error rate {self.baseline_rate:.4f} -> {self.alarm_rate:.4f}"
        return (
            f"{self.model}/{self.model_version} partition {self.partition}, detector "
            f"{self.detector} after {self.labeled} labelled events, prediction time "
            f"{_utc(self.prediction_time).isoformat()}{rates}"
        )


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@translated
class DetectorStateRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def load(self, streams: Collection[tuple[str, str, int]]) -> dict[DetectorKey, DetectorState]:
        """Every stored detector of the (model, version, partition) ``streams``, in one query."""
        if not streams:
            return {}
        d = DetectorStateRow
        rows = self.session.execute(
            select(
                d.model, d.model_version, d.partition, d.detector, d.loss, d.labeled, d.state
            ).where(tuple_(d.model, d.model_version, d.partition).in_(list(streams)))
        )
        return {
            DetectorKey(m, v, p, name): DetectorState(loss, int(n), json.loads(state))
            for m, v, p, name, loss, n, state in rows
        }

    def save(
        self,
        new: Sequence[tuple[DetectorKey, DetectorState]],
        changed: Sequence[tuple[DetectorKey, DetectorState]],
        now: datetime,
    ) -> None:
        """Insert the ``new`` rows and update the ``changed`` ones, one statement each."""
        if new:
            self.session.execute(
                insert(DetectorStateRow),
                [{**key._asdict(), **_values(state), "updated_at": now} for key, state in new],
            )
        if not changed:
            return
        table = DetectorStateRow.__table__
        stmt = (
            update(table)  # type: ignore[arg-type]
            .where(
                and_(
                    table.c.model == bindparam("k_model"),
                    table.c.model_version == bindparam("k_model_version"),
                    table.c.partition == bindparam("k_partition"),
                    table.c.detector == bindparam("k_detector"),
                )
            )
            .values(
                loss=bindparam("v_loss"),
                labeled=bindparam("v_labeled"),
                state=bindparam("v_state"),
                updated_at=bindparam("v_updated_at"),
            )
        )
        self.session.connection().execute(
            stmt,
            [
                {
                    **{f"k_{name}": value for name, value in key._asdict().items()},
                    **{f"v_{name}": value for name, value in _values(state).items()},
                    "v_updated_at": now,
                }
                for key, state in changed
            ],
        )


def _values(state: DetectorState) -> dict[str, Any]:
    return {"loss": state.loss, "labeled": state.labeled, "state": json.dumps(state.state)}


@translated
class AlarmRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, alarms: Sequence[Alarm], now: datetime) -> None:
        if not alarms:
            return
        self.session.execute(
            insert(ConceptDriftAlarmRow),
            [
                {
                    **a._asdict(),
                    "prediction_time": _utc(a.prediction_time),
                    "label_time": _utc(a.label_time),
                    "created_at": now,
                }
                for a in alarms
            ],
        )

    def in_window(
        self, model: str, model_version: str, start: datetime, end: datetime
    ) -> Counter[str]:
        """Alarms per detector whose pair's prediction lies in [start, end)."""
        a = ConceptDriftAlarmRow
        rows = self.session.execute(
            select(a.detector, func.count())
            .where(
                a.model == model,
                a.model_version == model_version,
                a.prediction_time >= start,
                a.prediction_time < end,
            )
            .group_by(a.detector)
        )
        return Counter({name: int(n) for name, n in rows})

    def rows(self, model: str | None = None) -> list[ConceptDriftAlarmRow]:
        """Stored alarms, in the order they were raised."""
        a = ConceptDriftAlarmRow
        stmt = select(a).order_by(a.id)
        if model is not None:
            stmt = stmt.where(a.model == model)
        return list(self.session.scalars(stmt).all())
