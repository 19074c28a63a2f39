"""What a canary analysis reads of the stream's per-version aggregates over a span.

One query per table, bounded by model, the two versions and the window range, and
read row by row (``yield_per``) so a long span does not hold every sketch at once.
The rows are each partition's share of a window, as ingestion stored them; the
caller decodes and sums them (:mod:`retrain.rollout.analysis`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Executable, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from db.errors import translate
from db.models import PerformanceAggregate, WindowAggregate

# Rows fetched per round trip: a window sketch is a few kilobytes to a few hundred
# (with its row sample), so this keeps a span's read to a few megabytes in memory.
_BATCH = 64


class WindowShare(NamedTuple):
    """One partition's share of one window of one version (``window_aggregates``);
    ``latency`` is None when none of its events carried ``latency_ms``."""

    model_version: str
    window_start: datetime
    event_count: int
    late_count: int
    sketch: bytes
    latency: bytes | None = None


class LabelledShare(NamedTuple):
    """One partition's labelled pairs of one window of one version
    (``performance_aggregates``)."""

    model_version: str
    window_start: datetime
    labeled: int
    sketch: bytes


def _rows(session: Session, stmt: Executable) -> Iterator[Any]:
    # A generator runs after its caller returned, so it translates errors itself.
    try:
        yield from session.execute(stmt.execution_options(yield_per=_BATCH))
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc) from exc


def window_shares(
    session: Session, model: str, versions: Collection[str], start: datetime, end: datetime
) -> Iterator[WindowShare]:
    """Rows of ``model``'s ``versions`` whose window lies within [``start``, ``end``)."""
    wa = WindowAggregate
    stmt = (
        select(
            wa.model_version, wa.window_start, wa.event_count, wa.late_count, wa.sketch, wa.latency
        )
        .where(
            wa.model == model,
            wa.model_version.in_(list(versions)),
            wa.window_start >= start,
            wa.window_end <= end,
        )
        .order_by(wa.window_start, wa.model_version, wa.partition, wa.layout)
    )
    for version, window_start, events, late, sketch, latency in _rows(session, stmt):
        yield WindowShare(version, window_start, int(events), int(late), sketch, latency)


def labelled_shares(
    session: Session, model: str, versions: Collection[str], start: datetime, end: datetime
) -> Iterator[LabelledShare]:
    """Rows of ``model``'s ``versions`` whose (prediction) window lies within
    [``start``, ``end``)."""
    pa = PerformanceAggregate
    stmt = (
        select(pa.model_version, pa.window_start, pa.labeled, pa.sketch)
        .where(
            pa.model == model,
            pa.model_version.in_(list(versions)),
            pa.window_start >= start,
            pa.window_end <= end,
        )
        .order_by(pa.window_start, pa.model_version, pa.partition, pa.layout)
    )
    for version, window_start, labeled, sketch in _rows(session, stmt):
        yield LabelledShare(version, window_start, int(labeled), sketch)
