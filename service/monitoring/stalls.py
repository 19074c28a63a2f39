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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consumers.progress import ConsumerProgress, OwnedPartition
from db.errors import StoreError
from service.alerts.replica import (
    Finding,
    PartitionKey,
    ReplicaCondition,
    describe,
)


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
    ) -> None:
        self._progress = progress
        self.detector = detector
        self._condition = condition
        self._missed: Finding | None = None

    def tick(self) -> list[str]:
        """One observation; the keys of the alert events it queued.

        The outbox lives in the database, so a stall caused by a database outage
        cannot be queued while it lasts: such a stall is kept and, should it end
        before the outbox is reachable again, queued then as a trigger and its
        resolve, so that it is told after the fact rather than never.
        """
        stall = self.detector.observe(self._progress())
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
