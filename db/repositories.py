"""Repositories: one per aggregate, each flushes and leaves the commit to its caller."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import OffsetConflict, translated, translating, violates
from db.layouts import LayoutRepository, edges_knowing, merged_into, row_bytes
from db.models import ConsumerOffset, WindowAggregate
from drift.latency_sketch import LatencySketch
from drift.sketch import LayoutEdges, WindowSketch

RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class StoredOffset:
    next_offset: int
    watermark: float | None


@dataclass(frozen=True, slots=True)
class OffsetAdvance:
    """Move a partition from ``expected`` (None: never stored) to ``next_offset``."""

    topic: str
    partition: int
    expected: int | None
    next_offset: int
    watermark: float | None


@dataclass(frozen=True, slots=True)
class OffsetFence:
    """Require the stored offset of a partition to still be ``expected`` (None: no row)."""

    topic: str
    partition: int
    expected: int | None


@dataclass(frozen=True, slots=True)
class WindowKey:
    """A stored window row. ``layout`` fingerprints the sketch's bins and schema
    (:attr:`drift.schema.ModelSpec.layout`); rows of different layouts never merge."""

    model: str
    model_version: str
    window_start: int
    window_seconds: int
    partition: int
    layout: str = ""


@dataclass(slots=True)
class WindowDelta:
    """What one flush adds to one window row: ``latency`` holds the ``latency_ms`` of
    the events that carry one."""

    sketch: WindowSketch
    late: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)


@dataclass(frozen=True, slots=True)
class WindowCount:
    model: str
    model_version: str
    window_start: datetime
    window_end: datetime
    events: int
    late: int
    partitions: int


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True, slots=True)
class PartitionWatermark:
    partition: int
    watermark: float | None
    updated_at: datetime


@translated
class OffsetRepository:
    def __init__(self, session: Session, consumer_group: str) -> None:
        self.session = session
        self.group = consumer_group

    def watermarks(self, topic: str) -> list[PartitionWatermark]:
        """Every stored partition's event-time watermark and when it last moved."""
        rows = self.session.execute(
            select(ConsumerOffset.partition, ConsumerOffset.watermark, ConsumerOffset.updated_at)
            .where(ConsumerOffset.consumer_group == self.group, ConsumerOffset.topic == topic)
            .order_by(ConsumerOffset.partition)
        )
        return [PartitionWatermark(p, w, u) for p, w, u in rows]

    def load(self, topic: str, partitions: Iterable[int]) -> dict[int, StoredOffset]:
        rows = self.session.scalars(
            select(ConsumerOffset).where(
                ConsumerOffset.consumer_group == self.group,
                ConsumerOffset.topic == topic,
                ConsumerOffset.partition.in_(list(partitions)),
            )
        )
        return {r.partition: StoredOffset(r.next_offset, r.watermark) for r in rows}

    def lock_partitions(self, partitions: Iterable[int]) -> None:
        """Serialise transactions on the same partition numbers of this group.

        The join state of partition p belongs to both topics' partition p, so a
        flush checks both offsets of p; on PostgreSQL a transaction-scoped
        advisory lock per (group, p) makes that check and the writes after it
        atomic even where no offset row exists yet. SQLite has one writer at
        a time already.
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return
        group_key = zlib.crc32(self.group.encode()) & 0x7FFFFFFF
        for p in sorted(set(partitions)):
            self.session.execute(select(func.pg_advisory_xact_lock(group_key, p)))

    def check(self, fences: Iterable[OffsetFence]) -> list[tuple[str, int]]:
        """The fenced partitions whose stored offset is not the expected one."""
        by_topic: dict[str, list[OffsetFence]] = {}
        for f in fences:
            by_topic.setdefault(f.topic, []).append(f)
        moved: list[tuple[str, int]] = []
        for topic, group in by_topic.items():
            stored = self.load(topic, [f.partition for f in group])
            for f in group:
                held = stored.get(f.partition)
                if (None if held is None else held.next_offset) != f.expected:
                    moved.append((topic, f.partition))
        return moved

    def advance(self, move: OffsetAdvance, now: datetime) -> bool:
        """Compare-and-set the stored offset; False when it was not ``expected``.

        A first insert that loses a race to another one at flush raises
        OffsetConflict instead: the transaction is lost with it.

        The WHERE on the old value fences out a consumer that lost its
        partition but still flushes: PostgreSQL re-checks it after the row lock,
        SQLite serialises writers, so only one of two racing writers wins.
        """
        if move.expected is None:
            return self._insert(move, now)
        result = self.session.execute(
            update(ConsumerOffset)
            .where(
                ConsumerOffset.consumer_group == self.group,
                ConsumerOffset.topic == move.topic,
                ConsumerOffset.partition == move.partition,
                ConsumerOffset.next_offset == move.expected,
            )
            .values(next_offset=move.next_offset, watermark=move.watermark, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def _insert(self, move: OffsetAdvance, now: datetime) -> bool:
        if self.session.get(ConsumerOffset, (self.group, move.topic, move.partition)):
            return False
        self.session.add(
            ConsumerOffset(
                consumer_group=self.group,
                topic=move.topic,
                partition=move.partition,
                next_offset=move.next_offset,
                watermark=move.watermark,
                updated_at=now,
            )
        )
        try:
            self.session.flush()
        except IntegrityError as exc:
            # A racing first flush of the same partition inserted the key after our
            # read (PostgreSQL makes our insert wait for it, then fail). No savepoint:
            # pysqlite's would commit early; the failed flush has lost the transaction.
            if violates(exc, ConsumerOffset.__table__, "pk_consumer_offsets"):
                raise OffsetConflict([(move.topic, move.partition)]) from exc
            raise
        return True


@translating
def window_row(
    session: Session,
    table: type[RowT],
    model: str,
    model_version: str,
    start: datetime,
    partition: int,
    layout: str,
) -> RowT | None:
    """The stored row of one partition's share of a window, in a table keyed like
    ``window_aggregates`` (model, version, window start, partition, layout)."""
    t: Any = table
    found: RowT | None = session.scalars(
        select(table).where(
            t.model == model,
            t.model_version == model_version,
            t.window_start == start,
            t.partition == partition,
            t.layout == layout,
        )
    ).one_or_none()
    return found


# Keys per lookup query: five bound parameters each, well under SQLite's limit of
# 32,766 variables (and PostgreSQL's 65,535).
_KEYS_PER_QUERY = 500

_StoredKey = tuple[str, str, datetime, int, str]


def _stored_key(key: WindowKey) -> _StoredKey:
    return (key.model, key.model_version, _utc(key.window_start), key.partition, key.layout)


def _row_key(row: WindowAggregate) -> _StoredKey:
    start = row.window_start
    # SQLite hands datetimes back naive; the column type stores UTC.
    start = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    return (row.model, row.model_version, start, row.partition, row.layout)


def _latency_bytes(stored: bytes | None, delta: LatencySketch) -> bytes | None:
    """The row's latency sketch with ``delta`` added; None while no event carried one."""
    if delta.count == 0:
        return stored
    if stored is None:
        return delta.to_bytes()
    merged = LatencySketch.from_bytes(stored)
    merged.merge(delta)
    return merged.to_bytes()


@translated
class WindowAggregateRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, key: WindowKey, delta: WindowDelta, now: datetime) -> None:
        """Merge ``delta`` into the stored row of ``key`` (created if absent)."""
        self.add_all({key: delta}, now)

    def add_all(self, deltas: Mapping[WindowKey, WindowDelta], now: datetime) -> None:
        """Merge each delta into the stored row of its key (created if absent).

        A flush touches a row per model version, window and partition: the stored
        rows are read in a few queries, as a query per row would cost a round trip
        (and an autoflush of the row added before it) for each.
        """
        layouts = LayoutRepository(self.session)
        layouts.ensure((d.sketch for d in deltas.values()), now)
        stored = self._stored([_stored_key(k) for k in deltas])
        for key, delta in deltas.items():
            skey = _stored_key(key)
            row = stored.get(skey)
            if row is None:
                self.session.add(
                    WindowAggregate(
                        model=key.model,
                        model_version=key.model_version,
                        window_start=skey[2],
                        window_end=_utc(key.window_start + key.window_seconds),
                        partition=key.partition,
                        layout=key.layout,
                        event_count=delta.sketch.events,
                        late_count=delta.late,
                        sketch=row_bytes(delta.sketch),
                        latency=_latency_bytes(None, delta.latency),
                        updated_at=now,
                    )
                )
                continue
            lookup = edges_knowing(delta.sketch.layout, delta.sketch.layout_edges(), layouts)
            merged = merged_into(row, delta.sketch, lookup)
            row.sketch = row_bytes(merged)
            row.event_count = merged.events
            row.late_count += delta.late
            row.latency = _latency_bytes(row.latency, delta.latency)
            row.updated_at = now

    def _stored(self, keys: list[_StoredKey]) -> dict[_StoredKey, WindowAggregate]:
        wa = WindowAggregate
        columns = tuple_(wa.model, wa.model_version, wa.window_start, wa.partition, wa.layout)
        found: dict[_StoredKey, WindowAggregate] = {}
        for at in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = keys[at : at + _KEYS_PER_QUERY]
            for row in self.session.scalars(select(wa).where(columns.in_(chunk))):
                found[_row_key(row)] = row
        return found

    def window_counts(self, model: str | None = None) -> list[WindowCount]:
        """Per-window totals over partitions, oldest first."""
        wa = WindowAggregate
        stmt = select(
            wa.model,
            wa.model_version,
            wa.window_start,
            wa.window_end,
            func.sum(wa.event_count),
            func.sum(wa.late_count),
            func.count(wa.partition.distinct()),
        ).group_by(wa.model, wa.model_version, wa.window_start, wa.window_end)
        if model is not None:
            stmt = stmt.where(wa.model == model)
        stmt = stmt.order_by(wa.window_start, wa.model, wa.model_version)
        return [
            WindowCount(m, v, s, e, int(n), int(late), int(p))
            for m, v, s, e, n, late, p in self.session.execute(stmt)
        ]

    def window_layouts(
        self, model: str, since: datetime, ended_by: datetime
    ) -> dict[tuple[str, datetime], dict[str, int]]:
        """Windows of ``model`` starting at ``since`` or later and ending by ``ended_by``:
        per (version, start), the events stored under each layout."""
        wa = WindowAggregate
        rows = self.session.execute(
            select(wa.model_version, wa.window_start, wa.layout, func.sum(wa.event_count))
            .where(wa.model == model, wa.window_start >= since, wa.window_end <= ended_by)
            .group_by(wa.model_version, wa.window_start, wa.layout)
        )
        out: dict[tuple[str, datetime], dict[str, int]] = {}
        for version, start, layout, events in rows:
            out.setdefault((version, start), {})[layout] = int(events)
        return out

    def sketches_within(self, model: str, start: datetime, end: datetime) -> Iterator[WindowSketch]:
        """The sketches of ``model``'s window rows lying within [start, end), each
        decoded as it is taken (a decoded row is several times its stored size)."""
        wa = WindowAggregate
        rows = self.session.scalars(
            select(wa.sketch).where(
                wa.model == model, wa.window_start >= start, wa.window_end <= end
            )
        ).all()
        edges = LayoutRepository(self.session).edges
        return (WindowSketch.from_bytes(raw, edges) for raw in rows)

    def newest_window_start(self, model: str) -> datetime | None:
        wa = WindowAggregate
        newest: datetime | None = self.session.scalar(
            select(func.max(wa.window_start)).where(wa.model == model)
        )
        return newest

    def window_sketch(
        self,
        model: str,
        model_version: str,
        window_start: datetime,
        layout: str | None = None,
        known: LayoutEdges | None = None,
    ) -> WindowSketch:
        """The whole window: the merge of every partition's sketch of one layout.

        Without ``layout`` the most recently written layout of the window is used.
        ``known`` are the edges of ``layout`` when the caller holds them (its spec's):
        then they are not read.
        """
        wa = WindowAggregate
        where = [
            wa.model == model,
            wa.model_version == model_version,
            wa.window_start == window_start,
        ]
        if layout is None:
            layout = self.session.scalars(
                select(wa.layout).where(*where).order_by(wa.updated_at.desc()).limit(1)
            ).first()
        sketches = self.session.scalars(
            select(wa.sketch).where(*where, wa.layout == layout).order_by(wa.partition)
        ).all()
        if not sketches:
            raise LookupError(f"no window {model}/{model_version} at {window_start.isoformat()}")
        layouts = LayoutRepository(self.session)
        edges = layouts.edges if known is None else edges_knowing(layout or "", known, layouts)
        merged = WindowSketch.from_bytes(sketches[0], edges)
        for raw in sketches[1:]:
            merged.merge(WindowSketch.from_bytes(raw, edges))
        return merged
