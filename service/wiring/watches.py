"""The replica's own watches, built from the ``alerts`` config: stalls and dead letters.

Both run on every replica (each has its own consumer), as scheduler jobs every
:attr:`Watches.interval` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from consumers.progress import ConsumerProgress
from service.alerts.replica import CONSUMER_STALLED, DEAD_LETTER_RATE, ReplicaCondition
from service.config import Config
from service.kafka_clients import BrokerEnds
from service.monitoring.deadletters import DeadLetterRate, EventTally
from service.monitoring.stalls import Ends, Recycle, StallDetector, StallWatch

# Often enough that a stall is seen within a tenth of its limit, and never busier than 1/s.
_MIN_INTERVAL, _MAX_INTERVAL = 1.0, 15.0


@dataclass(frozen=True)
class Watches:
    stalls: StallWatch
    dead_letters: DeadLetterRate
    interval: float


def build_tally(cfg: Config) -> EventTally:
    """The rolling count the ingest stats feed (see :class:`service.metric_feeds.IngestMetrics`)."""
    return EventTally(cfg.alerts.dead_letter_window, time.monotonic)


def build_watches(
    cfg: Config,
    sessions: sessionmaker[Session],
    progress: Callable[[], ConsumerProgress],
    tally: EventTally,
    recycle: Recycle | None = None,
    ends: Ends | None = None,
) -> Watches:
    """``recycle`` asks the ingest loop for a new consumer on a stall (None: never);
    ``ends`` reads the broker's end offsets (None: the consumer's own account only)."""
    a = cfg.alerts

    def condition(kind: str) -> ReplicaCondition:
        return ReplicaCondition(sessions, kind, cfg.kafka.group_id, lambda: datetime.now(UTC))

    detector = StallDetector(a.stalled_after, time.monotonic)
    stalls = StallWatch(progress, detector, condition(CONSUMER_STALLED), recycle, ends)
    rate = DeadLetterRate(
        tally, a.dead_letter_ratio, a.dead_letter_min_events, progress, condition(DEAD_LETTER_RATE)
    )
    return Watches(stalls, rate, watch_interval(cfg))


def broker_ends(cfg: Config) -> BrokerEnds:
    """The stall watch's reader of the broker's end offsets. A look lasts at most half
    the watch's interval (5 s at most), so a broker that is down never holds up the next."""
    return BrokerEnds(cfg.kafka, timeout=min(5.0, watch_interval(cfg) / 2))


def watch_interval(cfg: Config) -> float:
    """Seconds between two looks of each watch."""
    shortest = min(cfg.alerts.stalled_after, cfg.alerts.dead_letter_window)
    return min(_MAX_INTERVAL, max(_MIN_INTERVAL, shortest / 10))
