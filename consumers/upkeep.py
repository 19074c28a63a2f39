"""Keeping the loop's Kafka consumer working: polling through outages, and replacing
a consumer that stopped fetching while everything else answers.

A poll that fails retriably (the broker unreachable) is waited out with backoff,
and the client reconnects on the next call; the outage shows in
:class:`consumers.retry.Health`. Other failures end the loop.

kafka-python can, rarely, stop fetching with no error after a broker restart or a
coordinator change: every poll returns nothing while events wait, and only a new
client recovers (dpkp/kafka-python#1134 is a report of the same shape). The stall
watch (:mod:`service.monitoring.stalls`) sees it as a stall; when the database and
the dead-letter topic answer, so that no outage explains it, it asks the loop to
build a new consumer. Asking happens on the watch's thread; the replacing happens
on the loop's, between two polls, so the consumer is only ever touched there.

Nothing is lost or read twice across the swap: the loop flushes first, the old
client leaves the group, and the new one seeks every partition it is given to
the offset stored in SQL, as on any assignment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaConnectionError, KafkaError

from consumers.clients import Clock, ConsumerClient
from consumers.errors import ConsumerError
from consumers.positions import Stopping
from consumers.retry import Backoff, Dependency, Health

log = logging.getLogger(__name__)
ConsumerFactory = Callable[[], ConsumerClient]
_TRANSIENT_KAFKA_ERRORS = (CommitFailedError, KafkaConnectionError)


class Polls:
    """Polls that ride out broker outages: the client reconnects on the next call."""

    def __init__(self, health: Health, clock: Clock, max_backoff: float) -> None:
        self._health, self._clock = health, clock
        self._backoff = Backoff(max_backoff)

    def poll(
        self, consumer: ConsumerClient, timeout_ms: int, stop: threading.Event
    ) -> Mapping[TopicPartition, list[Any]]:
        try:
            batch = consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            if isinstance(exc.__cause__, Stopping):
                # Shutdown reached a rebalance callback, which kafka-python re-raised.
                raise exc.__cause__ from None
            if not (exc.retriable or isinstance(exc, _TRANSIENT_KAFKA_ERRORS)):
                raise ConsumerError(f"kafka consumer failed: {exc}") from exc
            if self._health.is_up(Dependency.KAFKA):
                log.warning("kafka unreachable, retrying: %s", exc)
            self._health.down(Dependency.KAFKA)
            self._clock.wait(stop, self._backoff.next())
            return {}
        if not self._health.is_up(Dependency.KAFKA):
            log.info("kafka reachable again")
        self._backoff.reset()
        self._health.up(Dependency.KAFKA)
        return batch


class Recycler:
    """Takes requests for a new consumer (any thread) and builds it (the loop's thread).

    ``build`` None: requests are refused (library use with a consumer of one's own).
    """

    def __init__(self, build: ConsumerFactory | None, health: Health) -> None:
        self._build, self._health = build, health
        # Written by the asking thread, taken by the loop: a plain attribute suffices,
        # as a request seen one iteration late changes nothing.
        self._reason: str | None = None

    def request(self, reason: str) -> bool:
        """Ask for a new consumer at the loop's next iteration; False when refused: no
        way to build one, or the database or the dead-letter topic is down (a flush that
        keeps failing stalls any consumer, and a new one would not help)."""
        if self._build is None:
            return False
        if not all(self._health.is_up(d) for d in (Dependency.STORE, Dependency.DEAD_LETTERS)):
            return False
        self._reason = reason
        return True

    @property
    def due(self) -> bool:
        return self._reason is not None

    def take(self) -> str:
        """The pending request's reason, cleared."""
        reason, self._reason = self._reason or "asked", None
        return reason

    def build(self) -> ConsumerClient | None:
        """A new consumer, or None (logged) when it cannot be built now: the old one is
        kept, and the next request tries again."""
        assert self._build is not None  # request() refuses without a factory
        try:
            return self._build()
        except (KafkaError, ConsumerError) as exc:
            log.warning("could not build a new Kafka consumer, keeping the old one: %s", exc)
            return None


def close_quietly(consumer: ConsumerClient) -> None:
    """Close without committing to Kafka (offsets live in SQL); a failing close is logged."""
    try:
        consumer.close(autocommit=False)
    except KafkaError as exc:
        log.warning("kafka consumer did not close cleanly: %s", exc)
