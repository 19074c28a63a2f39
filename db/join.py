"""Label-join state and performance aggregates: repositories that flush, never commit.

Every statement is scoped to one partition number, the unit a replica owns on
both the predictions and the labels topic, so replicas never touch each
other's rows. Lookups and writes are batched: one statement per partition and
model (chunked for parameter limits), never one per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple, TypeVar

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from db.errors import translated
from db.models import PendingLabel, PendingPrediction, PerformanceAggregate
from db.repositories import window_row
from drift.errors import DriftError
from drift.performance import PerformanceSketch

# Well under SQLite's and PostgreSQL's limits on bound parameters per statement.
_CHUNK = 500
T = TypeVar("T")


class JoinKey(NamedTuple):
    partition: int
    model: str
    event_id: str


class PredictionRecord(NamedTuple):
    """What a prediction contributes to the join: only what the metrics need."""

    partition: int
    model: str
    event_id: str
    model_version: str
    window_start: int
    event_time: float
    predicted: str | None  # the class, for classification
    value: float | None  # the number, for regression
    score: float | None  # probability of the positive class, when known
    expires_at: float
    labeled_at: float | None = None

    @property
    def key(self) -> JoinKey:
        return JoinKey(self.partition, self.model, self.event_id)


class LabelRecord(NamedTuple):
    """A label, its value as text (a class, or a number's repr for regression)."""

    partition: int
    model: str
    event_id: str
    actual: str
    event_time: float
    expires_at: float

    @property
    def key(self) -> JoinKey:
        return JoinKey(self.partition, self.model, self.event_id)


@dataclass(frozen=True, slots=True)
class PerformanceKey:
    model: str
    model_version: str
    window_start: int
    window_seconds: int
    partition: int
    layout: str


@dataclass(slots=True)
class PerformanceDelta:
    """What one flush adds to one performance aggregate row."""

    sketch: PerformanceSketch
    predicted: int = 0
    labeled: int = 0
    unlabeled: int = 0


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _by_partition_model(keys: Iterable[JoinKey]) -> dict[tuple[int, str], list[str]]:
    out: dict[tuple[int, str], list[str]] = {}
    for k in keys:
        out.setdefault((k.partition, k.model), []).append(k.event_id)
    return out


@translated
class JoinStateRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def predictions(self, keys: Iterable[JoinKey]) -> dict[JoinKey, PredictionRecord]:
        pp = PendingPrediction
        out: dict[JoinKey, PredictionRecord] = {}
        for (partition, model), ids in _by_partition_model(set(keys)).items():
            for chunk in _chunks(ids):
                rows = self.session.execute(
                    select(
                        pp.partition,
                        pp.model,
                        pp.event_id,
                        pp.model_version,
                        pp.window_start,
                        pp.event_time,
                        pp.predicted,
                        pp.value,
                        pp.score,
                        pp.expires_at,
                        pp.labeled_at,
                    ).where(pp.partition == partition, pp.model == model, pp.event_id.in_(chunk))
                )
                for row in rows:
                    record = PredictionRecord(*row)
                    out[record.key] = record
        return out

    def labels(self, keys: Iterable[JoinKey]) -> dict[JoinKey, LabelRecord]:
        pl = PendingLabel
        out: dict[JoinKey, LabelRecord] = {}
        for (partition, model), ids in _by_partition_model(set(keys)).items():
            for chunk in _chunks(ids):
                rows = self.session.execute(
                    select(
                        pl.partition,
                        pl.model,
                        pl.event_id,
                        pl.actual,
                        pl.event_time,
                        pl.expires_at,
                    ).where(pl.partition == partition, pl.model == model, pl.event_id.in_(chunk))
                )
                for row in rows:
                    record = LabelRecord(*row)
                    out[record.key] = record
        return out

    def add_predictions(self, records: Sequence[PredictionRecord]) -> None:
        if records:
            self.session.execute(insert(PendingPrediction), [r._asdict() for r in records])

    def add_labels(self, records: Sequence[LabelRecord]) -> None:
        if records:
            self.session.execute(insert(PendingLabel), [r._asdict() for r in records])

    def mark_labeled(self, labeled: Sequence[tuple[JoinKey, float]]) -> None:
        """Record that stored predictions got their label (at that label's event time)."""
        if not labeled:
            return
        pp = PendingPrediction
        stmt = (
            update(pp.__table__)  # type: ignore[arg-type]
            .where(
                and_(
                    pp.__table__.c.partition == bindparam("k_partition"),
                    pp.__table__.c.model == bindparam("k_model"),
                    pp.__table__.c.event_id == bindparam("k_event_id"),
                )
            )
            .values(labeled_at=bindparam("k_labeled_at"))
        )
        self.session.connection().execute(
            stmt,
            [
                {
                    "k_partition": k.partition,
                    "k_model": k.model,
                    "k_event_id": k.event_id,
                    "k_labeled_at": t,
                }
                for k, t in labeled
            ],
        )

    def remove_labels(self, keys: Sequence[JoinKey]) -> None:
        if not keys:
            return
        table = PendingLabel.__table__
        stmt = delete(table).where(  # type: ignore[arg-type]
            and_(
                table.c.partition == bindparam("k_partition"),
                table.c.model == bindparam("k_model"),
                table.c.event_id == bindparam("k_event_id"),
            )
        )
        self.session.connection().execute(
            stmt,
            [
                {"k_partition": k.partition, "k_model": k.model, "k_event_id": k.event_id}
                for k in keys
            ],
        )

    def expire_predictions(
        self, partition: int, watermark: float, stalled: bool = False
    ) -> Counter[tuple[str, str, int]]:
        """Drop the partition's predictions that expired before ``watermark``; return the
        unlabelled ones among them per (model, version, window start).

        ``watermark`` is the labels' watermark; with ``stalled`` it is the
        predictions' watermark instead, which expires a prediction only two TTLs
        after its time (``2 * expires_at - event_time``), so pending predictions
        stay bounded when the labels stop without cutting off merely late ones.
        """
        pp = PendingPrediction
        deadline = pp.expires_at * 2 - pp.event_time if stalled else pp.expires_at
        where = (pp.partition == partition, deadline < watermark)
        rows = self.session.execute(
            select(pp.model, pp.model_version, pp.window_start, func.count())
            .where(*where, pp.labeled_at.is_(None))
            .group_by(pp.model, pp.model_version, pp.window_start)
        )
        expired = Counter({(m, v, int(s)): int(n) for m, v, s, n in rows})
        self.session.execute(delete(pp).where(*where).execution_options(synchronize_session=False))
        return expired

    def expire_labels(self, partition: int, watermark: float) -> Counter[str]:
        """Drop the partition's parked labels that expired before ``watermark``; return
        how many per model (orphans: their prediction never came)."""
        pl = PendingLabel
        where = (pl.partition == partition, pl.expires_at < watermark)
        rows = self.session.execute(select(pl.model, func.count()).where(*where).group_by(pl.model))
        expired = Counter({m: int(n) for m, n in rows})
        if expired:
            self.session.execute(
                delete(pl).where(*where).execution_options(synchronize_session=False)
            )
        return expired


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True, slots=True)
class PerformanceWindow:
    """A whole window's performance: partitions merged, counts summed."""

    sketch: PerformanceSketch
    predicted: int
    labeled: int
    unlabeled: int


@translated
class PerformanceAggregateRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, key: PerformanceKey, delta: PerformanceDelta, now: datetime) -> None:
        """Merge ``delta`` into the stored row of ``key`` (created if absent)."""
        pa = PerformanceAggregate
        start = _utc(key.window_start)
        row = window_row(
            self.session, pa, key.model, key.model_version, start, key.partition, key.layout
        )
        if row is None:
            self.session.add(
                pa(
                    model=key.model,
                    model_version=key.model_version,
                    window_start=start,
                    window_end=_utc(key.window_start + key.window_seconds),
                    partition=key.partition,
                    layout=key.layout,
                    predicted=delta.predicted,
                    labeled=delta.labeled,
                    unlabeled=delta.unlabeled,
                    sketch=delta.sketch.to_bytes(),
                    updated_at=now,
                )
            )
            return
        try:
            merged = PerformanceSketch.from_bytes(row.sketch)
            merged.merge(delta.sketch)
        except DriftError as exc:
            # The caller's transaction is left to roll back: writing over it would lose it.
            row_name = _row(key.model, key.model_version, start, key.partition, key.layout)
            raise exc.about(row_name) from exc
        row.sketch = merged.to_bytes()
        row.predicted += delta.predicted
        row.labeled += delta.labeled
        row.unlabeled += delta.unlabeled
        row.updated_at = now

    def windows(
        self, model: str, since: datetime, ended_by: datetime
    ) -> list[tuple[str, datetime, datetime]]:
        """(version, start, end) of ``model``'s windows starting at ``since`` or later
        and ending by ``ended_by``, oldest first."""
        pa = PerformanceAggregate
        rows = self.session.execute(
            select(pa.model_version, pa.window_start, pa.window_end)
            .where(pa.model == model, pa.window_start >= since, pa.window_end <= ended_by)
            .group_by(pa.model_version, pa.window_start, pa.window_end)
            .order_by(pa.window_start, pa.model_version)
        )
        return [(v, s, e) for v, s, e in rows]

    def newest_window_start(self, model: str) -> datetime | None:
        pa = PerformanceAggregate
        newest: datetime | None = self.session.scalar(
            select(func.max(pa.window_start)).where(pa.model == model)
        )
        return newest

    def window(
        self, model: str, model_version: str, window_start: datetime, layout: str
    ) -> PerformanceWindow | None:
        """The window over partitions: counts of every layout, the sketches of ``layout``."""
        pa = PerformanceAggregate
        rows = self.session.execute(
            select(pa.layout, pa.predicted, pa.labeled, pa.unlabeled, pa.sketch, pa.partition)
            .where(
                pa.model == model,
                pa.model_version == model_version,
                pa.window_start == window_start,
            )
            .order_by(pa.partition)
        ).all()
        if not rows:
            return None
        merged: PerformanceSketch | None = None
        for row_layout, _, _, _, raw, partition in rows:
            if row_layout != layout:
                continue
            try:
                sketch = PerformanceSketch.from_bytes(raw)
                if merged is None:
                    merged = sketch
                else:
                    merged.merge(sketch)
            except DriftError as exc:
                row_name = _row(model, model_version, window_start, partition, layout)
                raise exc.about(row_name) from exc
        if merged is None:
            return None
        return PerformanceWindow(
            merged,
            sum(int(r[1]) for r in rows),
            sum(int(r[2]) for r in rows),
            sum(int(r[3]) for r in rows),
        )


def _row(model: str, version: str, start: datetime, partition: int, layout: str) -> str:
    return (
        f"performance aggregate {model}/{version} at {start.isoformat()}, "
        f"partition {partition}, layout {layout}"
    )
