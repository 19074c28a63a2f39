"""Is this replica's consumer stalled? The ``consumer_stalled`` alert and ``/readyz``.

A partition is *stalled* when events wait behind it (unread or unflushed: the
high watermark is past what SQL holds) and the offset SQL holds for it has not
moved for ``alerts.stalled_after``, unless the loop holds it back on purpose (a
predictions partition waiting for its labels in a backlog). A consumer that keeps up, or one that is
slow but flushing, never stalls; one whose flush keeps failing (the database or
the dead-letter topic unreachable) or whose loop hangs does.

:class:`StallDetector` is the pure part, fed the loop's
:class:`~consumers.progress.ConsumerProgress` and a monotonic clock;
:class:`StallWatch` is the scheduler job around it: it observes, queues the
alert's trigger or resolve (:class:`service.alerts.replica.ReplicaCondition`),
and answers ``/readyz`` from the same observation. Every replica runs its own,
since each has its own consumer.

A stall may also be the Kafka client itself having stopped fetching with no error
(:mod:`consumers.upkeep`). Such a client keeps the high watermark of its last
fetch, by which nothing waits, so the watch reads the partitions' ends from the
broker with a client of its own (``ends``) and judges by the higher. On a stall it
asks the loop for a new consumer (``recycle``), which the loop refuses while the
database or the dead-letter topic is down (those explain the stall, and a new
client would not help); it asks again after each further ``stalled_after`` the
stall lasts. The alert stays open across the swap: between the old client's
revocation and the new one's assignment nothing is owned, and the last verdict
is kept rather than read as a recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from consumers.progress import ConsumerProgress, OwnedPartition
from db.errors import StoreError
from service.alerts.replica import (
    Finding,
    PartitionKey,
    ReplicaCondition,
    describe,
)

log = logging.getLogger(__name__)
Recycle = Callable[[str], bool]
# The broker's end offsets of some partitions (service.kafka_clients.BrokerEnds).
Ends = Callable[[Sequence[PartitionKey]], Mapping[PartitionKey, int]]


def with_ends(progress: ConsumerProgress, ends: Mapping[PartitionKey, int]) -> ConsumerProgress:
    """``progress`` with each owned partition's high watermark raised to the broker's end."""
    if not ends:
        return progress
    owned = tuple(
        replace(p, high=max(p.high or 0, ends[(p.topic, p.partition)]))
        if (p.topic, p.partition) in ends
        else p
        for p in progress.owned
    )
    return replace(progress, owned=owned)


@dataclass(frozen=True)
class Stall:
    """Partitions that made no progress for ``stalled_after`` seconds or more."""

    partitions: dict[PartitionKey, OwnedPartition]
    seconds: float
    stalled_after: float

    def describe(self) -> str:
        lag = sum(p.lag or 0 for p in self.partitions.values())
        return (
            f"the consumer is stalled: {describe(self.partitions)} made no progress for "
            f"{self.seconds:.0f} s ({lag} messages behind; limit {self.stalled_after:.0f} s)"
        )


class StallDetector:
    """Tracks, per owned partition that is behind, since when its committed offset stands.

    >>> from consumers.progress import ConsumerProgress, OwnedPartition
    >>> t = [0.0]
    >>> d = StallDetector(stalled_after=60.0, clock=lambda: t[0])
    >>> stuck = ConsumerProgress(owned=(OwnedPartition("p", 0, 10, 15, 20),))
    >>> d.observe(stuck) is None
    True
    >>> t[0] = 60.0
    >>> d.observe(stuck).seconds
    60.0
    """

    def __init__(self, stalled_after: float, clock: Callable[[], float]) -> None:
        if stalled_after <= 0:
            raise ValueError(f"stalled_after must be positive, got {stalled_after}")
        self.stalled_after = stalled_after
        self._clock = clock
        self._since: dict[PartitionKey, tuple[int | None, float]] = {}
        self._stall: Stall | None = None
        self._healthy: frozenset[PartitionKey] = frozenset()

    @property
    def stall(self) -> Stall | None:
        """The stall found by the last observation, or None."""
        return self._stall

    @property
    def healthy(self) -> frozenset[PartitionKey]:
        """Owned partitions last seen caught up, or moving."""
        return self._healthy

    def observe(self, progress: ConsumerProgress) -> Stall | None:
        if not progress.assigned and not progress.owned and self._stall is not None:
            return self._stall  # between a revocation and the next assignment
        now = self._clock()
        since: dict[PartitionKey, tuple[int | None, float]] = {}
        healthy: set[PartitionKey] = set()
        for p in progress.owned:
            key = (p.topic, p.partition)
            before = self._since.get(key)
            if not p.behind or p.held:
                # Held back on purpose while its labels catch up (their partition is
                # watched for its own progress).
                healthy.add(key)
                continue
            if before is None or before[0] != p.committed:
                if before is not None:
                    healthy.add(key)  # SQL took more of it since the last look
                since[key] = (p.committed, now)
            else:
                since[key] = before
        owned = {(p.topic, p.partition): p for p in progress.owned}
        stalled = {
            key: owned[key]
            for key, (_, start) in since.items()
            if now - start >= self.stalled_after
        }
        self._since = since
        self._healthy = frozenset(healthy)
        if not stalled:
            self._stall = None
        else:
            longest = max(now - since[key][1] for key in stalled)
            self._stall = Stall(stalled, longest, self.stalled_after)
        return self._stall


class StallWatch:
    """The ``consumer-stalls`` job: observe the loop's progress, alert on a stall."""

    def __init__(
        self,
        progress: Callable[[], ConsumerProgress],
        detector: StallDetector,
        condition: ReplicaCondition,
        recycle: Recycle | None = None,
        ends: Ends | None = None,
    ) -> None:
        self._progress = progress
        self.detector = detector
        self._condition = condition
        self._missed: Finding | None = None
        self._recycle = recycle
        self._ends = ends
        self._asked_at: float | None = None  # the stall's length when a recycle was taken

    def tick(self) -> list[str]:
        """One observation; the keys of the alert events it queued.

        The outbox lives in the database, so a stall caused by a database outage
        cannot be queued while it lasts: such a stall is kept and, should it end
        before the outbox is reachable again, queued then as a trigger and its
        resolve, so that it is told after the fact rather than never.
        """
        progress = self._progress()
        if self._ends is not None and progress.owned:
            ends = self._ends([(p.topic, p.partition) for p in progress.owned])
            progress = with_ends(progress, ends)
        stall = self.detector.observe(progress)
        self._maybe_recycle(stall)
        finding = self._finding(stall)
        queued: list[str] = []
        try:
            if finding is None and self._missed is not None:
                queued += self._condition.update(self._missed, frozenset())
            self._missed = None
            cleared = {"stalled_after": self.detector.stalled_after}
            queued += self._condition.update(finding, self.detector.healthy, cleared)
        except StoreError:
            if finding is not None and self._condition.firing is None:
                self._missed = finding
            raise
        return queued

    def _maybe_recycle(self, stall: Stall | None) -> None:
        """Ask for a new consumer once per ``stalled_after`` of a stall; a refused ask is
        repeated at the next tick."""
        if stall is None or self._recycle is None:
            self._asked_at = None
            return
        if self._asked_at is not None and self._asked_at <= stall.seconds < (
            self._asked_at + stall.stalled_after
        ):
            return
        if self._recycle(stall.describe()):
            self._asked_at = stall.seconds
            log.warning("asked for a new Kafka consumer: %s", stall.describe())

    @staticmethod
    def _finding(stall: Stall | None) -> Finding | None:
        if stall is None:
            return None
        return Finding(
            frozenset(stall.partitions),
            stall.describe(),
            {
                "stalled_seconds": round(stall.seconds, 1),
                "stalled_after": stall.stalled_after,
                "lag": {
                    f"{topic}:{partition}": p.lag
                    for (topic, partition), p in sorted(stall.partitions.items())
                },
                "committed": {
                    f"{topic}:{partition}": p.committed
                    for (topic, partition), p in sorted(stall.partitions.items())
                },
            },
        )

    def problem(self) -> str | None:
        """Why ``/readyz`` should fail on account of a stall, or None."""
        stall = self.detector.stall
        return None if stall is None else stall.describe()
