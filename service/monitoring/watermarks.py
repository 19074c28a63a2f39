"""When windows are final: the event time up to which every partition has been flushed.

One rule decides it for data drift (:mod:`service.evaluation`, on the
predictions topic) and concept drift (:mod:`service.performance`, on the
predictions and the labels topics); both ask :class:`Finality`.

A window is final when the closing watermark passes its end plus the allowed
lateness. The closing watermark is the *lowest* watermark over the partitions
of a topic, because any partition may still deliver events of the window until
its own watermark passes. A partition that has delivered nothing for
``evaluation.idle_partition_timeout`` is treated as idle and ignored, or a
quiet partition would hold every window open forever. Watermarks are read from
SQL, where they are committed with the offsets and the aggregates, so a window
judged final has had every on-time event flushed. Data drift
(:mod:`service.monitoring.evaluation`) closes windows on the predictions topic, concept
drift (:mod:`service.monitoring.performance`) on the predictions and the labels topics.

"Delivered nothing" is only believed from a replica that knows its consumer's
progress (``driftwatch run``): while its consumer does not hold its group
assignment (at start-up, after a restart, during a rebalance) no window is
final, because a partition whose flushes stopped when the previous process
died looks exactly like a quiet one; and a partition it owns with events
unread, unflushed, or its end not yet known is never idle. Only the one-shot
``driftwatch evaluate``, which has no consumer, judges by SQL alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from consumers.loop import ConsumerProgress
from db.repositories import OffsetRepository, PartitionWatermark

_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def as_bound(epoch: float) -> datetime:
    """An event time as a datetime bound; infinity (every window closed) as the far future."""
    return _FAR_FUTURE if math.isinf(epoch) else datetime.fromtimestamp(epoch, UTC)


def busy_partitions(progress: ConsumerProgress, topic: str) -> frozenset[int]:
    """This replica's partitions of ``topic`` with events unread or unflushed, or an unknown end.

    ``progress.busy`` (the predictions topic's) is included whatever ``topic``:
    the labels topic is co-partitioned with it, and partition p's labels are
    joined with partition p's predictions, so a busy p holds both.
    """
    busy = set(progress.busy)
    for o in progress.owned:
        if o.topic != topic:
            continue
        if o.high is None or o.position is None or o.position != o.committed:
            busy.add(o.partition)  # end unknown, nothing read yet, or read but not flushed
        elif o.position < o.high:
            busy.add(o.partition)  # unread events
    return frozenset(busy)


def closing_watermark(
    marks: list[PartitionWatermark],
    now: float,
    idle_after: float,
    progress: ConsumerProgress | None = None,
    missing_since: Mapping[int, float] | None = None,
    topic: str = "",
) -> float | None:
    """The event time up to which every partition has been flushed (None: nothing yet).

    The minimum over partitions that are active: flushed within ``idle_after``
    seconds, or known to this replica to have events not yet flushed (see
    :func:`busy_partitions`). With ``progress``, nothing is closed until the
    consumer holds its assignment. A partition of the topic with nothing
    stored yet holds every window open while it is busy or until it has been
    missing for ``idle_after`` (``missing_since``), as a partition whose
    backlog has not been read yet would. When every partition is idle the
    stream has stopped, and waiting longer would never close its last windows,
    so everything counts as closed (infinity).

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> marks = [PartitionWatermark(0, 100.0, t), PartitionWatermark(1, 90.0, t)]
    >>> closing_watermark(marks, t.timestamp() + 5, idle_after=60)
    90.0
    >>> closing_watermark(marks, t.timestamp() + 120, idle_after=60)
    inf
    >>> busy = ConsumerProgress(frozenset({0, 1}), frozenset({0}), assigned=True)
    >>> closing_watermark(marks, t.timestamp() + 120, idle_after=60, progress=busy)
    100.0
    >>> restarted = ConsumerProgress(frozenset({0, 1}), frozenset())
    >>> print(closing_watermark(marks, t.timestamp() + 120, idle_after=60, progress=restarted))
    None
    >>> unseen = ConsumerProgress(frozenset({0, 1, 2}), frozenset(), assigned=True)
    >>> print(closing_watermark(marks, t.timestamp() + 120, 60, unseen, {2: t.timestamp() + 100}))
    None
    """
    if progress is not None and not progress.assigned:
        return None
    progress = progress or ConsumerProgress()
    busy = busy_partitions(progress, topic)
    missing_since = missing_since or {}
    stored = {m.partition for m in marks}
    for p in progress.partitions - stored:
        if p in busy or now - missing_since.get(p, now) < idle_after:
            return None
    if not any(m.watermark is not None for m in marks):
        return None
    active = [
        m.watermark
        for m in marks
        if m.watermark is not None
        and (now - m.updated_at.timestamp() < idle_after or m.partition in busy)
    ]
    return min(active) if active else math.inf


class Finality:
    """The closing watermark of a consumer group's topics, by :func:`closing_watermark`.

    One is shared by the drift and the performance evaluators of a replica, so
    that both judge a window final by the same rule and the same consumer
    progress.
    """

    def __init__(
        self, idle_after: float, progress: Callable[[], ConsumerProgress] | None = None
    ) -> None:
        self._idle_after = idle_after
        self._progress = progress
        self._missing_since: dict[str, dict[int, float]] = {}

    def follow(self, progress: Callable[[], ConsumerProgress]) -> None:
        """Read this replica's consumer progress when deciding which partitions are idle."""
        self._progress = progress

    def closing(self, offsets: OffsetRepository, topic: str, now: float) -> float | None:
        """``topic``'s closing watermark in the group of ``offsets`` (None: nothing final)."""
        progress = self._progress() if self._progress else None
        marks = offsets.watermarks(topic)
        missing = self._missing_since.setdefault(topic, {})
        if progress is not None:
            stored = {m.partition for m in marks}
            for p in progress.partitions - stored:
                missing.setdefault(p, now)
        return closing_watermark(marks, now, self._idle_after, progress, missing, topic)
