"""The ``dead_letter_rate`` alert: too large a share of this replica's events is invalid.

The ingest loop reports what it reads through :class:`consumers.stats.IngestStats`;
:class:`service.metric_feeds.IngestMetrics` also feeds an :class:`EventTally`, a
rolling count over ``alerts.dead_letter_window`` kept in time buckets (no
Prometheus scraping). Events are the valid predictions (late ones included),
the labels read, and the dead letters (invalid predictions and labels).

:class:`DeadLetterRate` judges the tally: it *fires* when at least
``dead_letter_min_events`` events were read in the window and the dead-lettered
share exceeds ``dead_letter_ratio``; it *resolves* once the share is back at
or under the ratio on as many events, or no dead letter is left in the window.
Between the two (too few events to tell) it holds its state.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from consumers.progress import ConsumerProgress
from service.alerts.replica import Finding, ReplicaCondition

# Buckets per window: the window slides in steps of 1/60 of its length.
_BUCKETS = 60


@dataclass(frozen=True, slots=True)
class Counts:
    events: int
    dead: int

    @property
    def ratio(self) -> float:
        return self.dead / self.events if self.events else 0.0


class EventTally:
    """Events and dead letters seen over the last ``window`` seconds of ``clock``.

    Written by the ingest thread, read by the scheduler's: a lock guards the buckets.

    >>> t = [0.0]
    >>> tally = EventTally(window=60.0, clock=lambda: t[0])
    >>> tally.add(events=10, dead=1)
    >>> t[0] = 30.0
    >>> tally.add(events=10, dead=0)
    >>> tally.counts()
    Counts(events=20, dead=1)
    >>> t[0] = 61.0
    >>> tally.counts()
    Counts(events=10, dead=0)
    """

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        self.window = window
        self._width = window / _BUCKETS
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: deque[list[int]] = deque()  # [bucket number, events, dead]

    def add(self, events: int = 0, dead: int = 0) -> None:
        bucket = math.floor(self._clock() / self._width)
        with self._lock:
            if self._buckets and self._buckets[-1][0] == bucket:
                self._buckets[-1][1] += events
                self._buckets[-1][2] += dead
            else:
                self._buckets.append([bucket, events, dead])
            self._expire(bucket)

    def counts(self) -> Counts:
        bucket = math.floor(self._clock() / self._width)
        with self._lock:
            self._expire(bucket)
            return Counts(sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets))

    def _expire(self, bucket: int) -> None:
        while self._buckets and self._buckets[0][0] <= bucket - _BUCKETS:
            self._buckets.popleft()


class Tally(Protocol):
    """Where :class:`service.metric_feeds.IngestMetrics` counts events and dead letters."""

    def add(self, events: int = 0, dead: int = 0) -> None: ...


class NoTally:
    """Counts nothing: the ingest stats of a loop nobody judges (tools, tests)."""

    def add(self, events: int = 0, dead: int = 0) -> None:
        pass


class DeadLetterRate:
    """The ``dead-letter-rate`` job: judge the tally, alert on a high share."""

    def __init__(
        self,
        tally: EventTally,
        ratio: float,
        min_events: int,
        progress: Callable[[], ConsumerProgress],
        condition: ReplicaCondition,
    ) -> None:
        if not 0 < ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        if min_events < 1:
            raise ValueError(f"min_events must be at least 1, got {min_events}")
        self._tally = tally
        self._ratio = ratio
        self._min_events = min_events
        self._progress = progress
        self._condition = condition

    def tick(self) -> list[str]:
        """One judgement; the keys of the alert events it queued."""
        counts = self._tally.counts()
        owned = frozenset((p.topic, p.partition) for p in self._progress().owned)
        judged = counts.events >= self._min_events
        high = judged and counts.ratio > self._ratio
        clear = counts.dead == 0 or (judged and not high)
        firing = self._condition.firing is not None
        if high or (firing and not clear):
            finding = Finding(owned, self._message(counts), self._details(counts))
            return self._condition.update(finding, frozenset())
        return self._condition.update(None, owned if clear else frozenset(), self._details(counts))

    def _message(self, counts: Counts) -> str:
        return (
            f"{counts.dead} of {counts.events} events ({counts.ratio:.1%}) dead-lettered in the "
            f"last {self._tally.window:.0f} s (limit {self._ratio:.1%} of at least "
            f"{self._min_events})"
        )

    def _details(self, counts: Counts) -> dict[str, float | int]:
        return {
            "ratio": round(counts.ratio, 6),
            "dead_letters": counts.dead,
            "events": counts.events,
            "window_seconds": self._tally.window,
            "threshold": self._ratio,
            "min_events": self._min_events,
        }
