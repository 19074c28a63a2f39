"""When windows close: the event time up to which every partition has been flushed.

A window closes when the event-time watermark passes its end plus the allowed
lateness. The watermark that matters is the *lowest* over the partitions of
a topic, because any partition may still deliver events of the window until
its own watermark passes; a partition that has delivered nothing for
``evaluation.idle_partition_timeout`` is treated as idle and ignored, or a
quiet partition would hold every window open forever. Watermarks are read from
SQL, where they are committed with the offsets and the aggregates, so a window
judged closed has had every on-time event flushed. Data drift
(:mod:`service.monitoring.evaluation`) closes windows on the predictions topic, concept
drift (:mod:`service.monitoring.performance`) on the predictions and the labels topics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

from consumers.loop import ConsumerProgress
from db.repositories import PartitionWatermark

_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def as_bound(epoch: float) -> datetime:
    """An event time as a datetime bound; infinity (every window closed) as the far future."""
    return _FAR_FUTURE if math.isinf(epoch) else datetime.fromtimestamp(epoch, UTC)


def closing_watermark(
    marks: list[PartitionWatermark],
    now: float,
    idle_after: float,
    progress: ConsumerProgress | None = None,
    missing_since: Mapping[int, float] | None = None,
) -> float | None:
    """The event time up to which every partition has been flushed (None: nothing yet).

    The minimum over partitions that are active: flushed within ``idle_after``
    seconds, or known to this replica to have events not yet flushed
    (``progress.busy``). A partition of the topic with nothing stored yet
    holds every window open while it is busy or until it has been missing
    for ``idle_after`` (``missing_since``), as a partition whose backlog has
    not been read yet would. When every partition is idle the stream has
    stopped, and waiting longer would never close its last windows, so
    everything counts as closed (infinity).

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> marks = [PartitionWatermark(0, 100.0, t), PartitionWatermark(1, 90.0, t)]
    >>> closing_watermark(marks, t.timestamp() + 5, idle_after=60)
    90.0
    >>> closing_watermark(marks, t.timestamp() + 120, idle_after=60)
    inf
    >>> busy = ConsumerProgress(frozenset({0, 1}), frozenset({0}))
    >>> closing_watermark(marks, t.timestamp() + 120, idle_after=60, progress=busy)
    100.0
    >>> unseen = ConsumerProgress(frozenset({0, 1, 2}), frozenset())
    >>> print(closing_watermark(marks, t.timestamp() + 120, 60, unseen, {2: t.timestamp() + 100}))
    None
    """
    progress = progress or ConsumerProgress()
    missing_since = missing_since or {}
    stored = {m.partition for m in marks}
    for p in progress.partitions - stored:
        if p in progress.busy or now - missing_since.get(p, now) < idle_after:
            return None
    if not any(m.watermark is not None for m in marks):
        return None
    active = [
        m.watermark
        for m in marks
        if m.watermark is not None
        and (now - m.updated_at.timestamp() < idle_after or m.partition in progress.busy)
    ]
    return min(active) if active else math.inf
