"""The dead-letter topic: rejected events, with the reason, never dropped silently.

Delivery is at-least-once: an envelope is published before the offsets that
skip its event are stored, so a crash in between publishes it again. The
envelope carries topic, partition and offset, which identify duplicates.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from kafka.errors import KafkaError

from consumers.clients import ProducerClient, SendFuture
from consumers.errors import DeadLetterError

# Kafka takes about 1 MB per message by default (the broker's message.max.bytes, the
# producer's max_request_size) and base64 adds a third: a rejected message's value is
# kept whole up to 512 KiB, else its first 512 KiB are, so that no payload can make its
# own dead letter undeliverable (and the flush wait for it forever).
MAX_VALUE_BYTES = 512 * 1024
MAX_KEY_BYTES = 1024
MAX_REASON_CHARS = 2000


class DeadLetter(msgspec.Struct, frozen=True, omit_defaults=True):
    """``value_size`` (the original size) is present when ``value_b64`` holds a prefix."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value_b64: str | None
    seen_at: str
    value_size: int | None = None


def envelope(
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    seen_at: float,
) -> bytes:
    truncated = value is not None and len(value) > MAX_VALUE_BYTES
    return msgspec.json.encode(
        DeadLetter(
            reason=reason[:MAX_REASON_CHARS],
            topic=topic,
            partition=partition,
            offset=offset,
            key=None if key is None else key[:MAX_KEY_BYTES].decode("utf-8", "replace"),
            value_b64=None
            if value is None
            else base64.b64encode(value[:MAX_VALUE_BYTES]).decode("ascii"),
            seen_at=datetime.fromtimestamp(seen_at, UTC).isoformat().replace("+00:00", "Z"),
            value_size=len(value) if truncated and value is not None else None,
        )
    )


@dataclass(slots=True)
class _Pending:
    key: bytes | None
    value: bytes
    future: SendFuture | None


class DeadLetterPublisher:
    """Publishes envelopes and confirms them all before a flush may proceed.

    ``make_producer`` builds the Kafka producer; it may raise :class:`KafkaError`
    (or :class:`DeadLetterError`) when it cannot, which is retriable like a
    failed send: the envelopes stay pending and :meth:`confirm` tries again.
    """

    def __init__(
        self,
        make_producer: Callable[[], ProducerClient],
        topic: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Created on the first confirm(): a healthy stream never pays for the producer's
        # network thread competing with the consumer for the GIL, and creating one may
        # block (kafka-python waits max_block_ms for a broker), which belongs in the
        # flush's retry loop rather than in the middle of a poll.
        self._make_producer = make_producer
        self._producer: ProducerClient | None = None
        self.topic = topic
        self._pending: list[_Pending] = []
        self._monotonic = monotonic
        # A send blocks up to max_block_ms when the topic's metadata does not come (a
        # topic missing, a broker away) and fails again for the next envelope: after one
        # failure nothing is sent until the next confirm(), which resends under its
        # deadline. Else each malformed event held the poll for max_block_ms.
        self._sending = True

    def publish(self, key: bytes | None, value: bytes) -> None:
        """Publish an envelope keyed by (at most the first KiB of) its event's key."""
        key = None if key is None else key[:MAX_KEY_BYTES]
        future = self._send(key, value) if self._sending else None
        self._pending.append(_Pending(key, value, future))

    def confirm(self, timeout: float) -> None:
        """Wait, ``timeout`` seconds at most in all, until every envelope is acknowledged.

        Raises DeadLetterError (retriable) if the producer could not be created
        or some envelopes could not be delivered; they stay pending and are sent
        again on the next call.
        """
        if not self._pending:
            return
        producer = self._ensure_producer()
        end = self._monotonic() + timeout
        self._sending = True
        for p in self._pending:
            if p.future is None:
                if not self._sending or self._monotonic() >= end:
                    break
                p.future = self._send(p.key, p.value)
        try:
            producer.flush(timeout=max(end - self._monotonic(), 0.0))
        except KafkaError as exc:
            raise DeadLetterError(f"dead-letter topic unreachable: {exc}") from exc
        failed = [
            p
            for p in self._pending
            if p.future is None or not p.future.is_done or p.future.failed()
        ]
        for p in failed:
            p.future = None  # sent again by the next call, under its deadline
        self._pending = failed
        if failed:
            raise DeadLetterError(f"{len(failed)} dead letters not yet acknowledged")

    def _send(self, key: bytes | None, value: bytes) -> SendFuture | None:
        if self._producer is None:
            return None
        try:
            return self._producer.send(self.topic, key=key, value=value)
        except KafkaError:
            # Kept pending with no future: the next confirm() sends it again.
            self._sending = False
            return None

    def close(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.close(timeout=timeout)
            self._producer = None

    def _ensure_producer(self) -> ProducerClient:
        if self._producer is None:
            try:
                self._producer = self._make_producer()
            except KafkaError as exc:
                raise DeadLetterError(f"cannot create the dead-letter producer: {exc}") from exc
        return self._producer
