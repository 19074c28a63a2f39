"""The bin edges of each sketch layout, stored once instead of in every window row.

A window row names its layout (:attr:`drift.schema.ModelSpec.layout`, a
fingerprint of the features' kinds and bin edges) and leaves the edges to this
table: with profile bins they were ~110 KB of a ~125 KB row. The flush that
writes a layout's first row inserts the layout in the same transaction, so a
committed row always finds its edges. A layout's content never changes (its key
is a hash of it), so readers cache it without invalidation, and the rows are
never deleted: there is one per profile version and bins setting a model ever
had, as there is a stored profile (which retention keeps too).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import LargeBinary, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from db.base import Base, UTCDateTime
from db.errors import translated
from db.models import WindowAggregate
from drift.errors import DriftError, SketchCorrupt
from drift.sketch import EdgeLookup, LayoutEdges, WindowSketch


class SketchLayoutRow(Base):
    __tablename__ = "sketch_layouts"

    layout: Mapped[str] = mapped_column(String(32), primary_key=True)
    edges: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Readers' cache of decoded layouts. A layout is ~590 edges per numerical feature
# as Python floats (~0.5 MB for 22 features), so the cache is bounded; an evicted
# layout costs one primary-key read and a decode (~1 ms) when next needed.
_CACHE_SIZE = 64
_cache: OrderedDict[str, LayoutEdges] = OrderedDict()
_lock = threading.Lock()


def _cached(layout: str) -> LayoutEdges | None:
    with _lock:
        found = _cache.get(layout)
        if found is not None:
            _cache.move_to_end(layout)
        return found


def _remember(layout: str, edges: LayoutEdges) -> None:
    with _lock:
        _cache[layout] = edges
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


@translated
class LayoutRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def ensure(self, sketches: Iterable[WindowSketch], now: datetime) -> None:
        """Store the layout edges of ``sketches`` not stored yet.

        One query per call; a replica inserting the same layout concurrently is
        no conflict (the insert skips a stored key).
        """
        wanted = {s.layout: s for s in sketches if s.layout}
        if not wanted:
            return
        t = SketchLayoutRow
        stored = set(self.session.scalars(select(t.layout).where(t.layout.in_(list(wanted)))))
        missing = [
            {"layout": layout, "edges": sketch.layout_edges().to_bytes(), "created_at": now}
            for layout, sketch in wanted.items()
            if layout not in stored
        ]
        if not missing:
            return
        dialect = sqlite if self.session.get_bind().dialect.name == "sqlite" else postgresql
        self.session.execute(
            dialect.insert(t).values(missing).on_conflict_do_nothing(index_elements=["layout"])
        )

    def edges(self, layout: str) -> LayoutEdges:
        """The stored edges of ``layout``; raises SketchCorrupt when none are stored."""
        found = _cached(layout)
        if found is None:
            raw = self.session.get(SketchLayoutRow, layout)
            if raw is None:
                raise SketchCorrupt(f"no bin edges are stored for sketch layout {layout!r}")
            found = LayoutEdges.from_bytes(raw.edges)
            _remember(layout, found)
        return found


def row_bytes(sketch: WindowSketch) -> bytes:
    """A window row's sketch: its edges are left to the stored layout when it has one."""
    return sketch.to_bytes(edges=not sketch.layout)


def edges_knowing(layout: str, known: LayoutEdges, layouts: LayoutRepository) -> EdgeLookup:
    """A lookup that answers ``layout`` with ``known`` (edges the caller holds: a
    flush's delta, an evaluated model's spec) and reads only other layouts."""

    def lookup(wanted: str) -> LayoutEdges:
        return known if wanted == layout else layouts.edges(wanted)

    return lookup


def merged_into(row: WindowAggregate, delta: WindowSketch, lookup: EdgeLookup) -> WindowSketch:
    """The stored row's sketch with ``delta`` merged in.

    A row that does not decode or merge raises its error again naming the row: the
    flush stops there (not retriable), as writing over the row could destroy what a
    newer release stored, so only an operator may remove it.
    """
    try:
        merged = WindowSketch.from_bytes(row.sketch, lookup)
        merged.merge(delta)
    except DriftError as exc:
        raise exc.about(
            f"window row {row.model}/{row.model_version} at {row.window_start.isoformat()}, "
            f"partition {row.partition}, layout {row.layout}"
        ) from exc
    return merged
