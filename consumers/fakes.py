"""In-memory stand-ins for Kafka and the clock, checked against :mod:`consumers.clients`.

They behave as kafka-python does where the loop depends on it: eager
rebalances run inside :meth:`FakeConsumer.poll`, and an exception raised by a
rebalance listener comes out of ``poll`` as a :class:`KafkaError` caused by it.
Time only moves when someone waits, so a test drives backoffs and flush
intervals without sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from kafka import TopicPartition
from kafka.errors import KafkaError, MessageSizeTooLargeError

from consumers.clients import Clock, ConsumerClient, ProducerClient


class FakeClock:
    """One clock for wall and monotonic time, advanced by sleeps and waits."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        if not stop.is_set():
            self.now += seconds
        return stop.is_set()


class FakeRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class FakeConsumer:
    """Enough of kafka-python's KafkaConsumer, over in-memory partition logs."""

    def __init__(
        self, clock: FakeClock, partitions: Iterable[TopicPartition], max_records: int = 500
    ) -> None:
        self.clock, self.max_records = clock, max_records
        self.log: dict[TopicPartition, list[FakeRecord]] = {p: [] for p in partitions}
        self.subscribed: list[str] = []
        self.listener: Any = None
        self.assigned: set[TopicPartition] = set()
        self.position: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.seeks: list[tuple[TopicPartition, int]] = []  # every seek, in order
        self.commits: list[dict[TopicPartition, int]] = []  # commit_async offsets
        self.paused_at_poll: list[frozenset[TopicPartition]] = []
        self.errors: list[Exception] = []  # raised by the next polls, one each
        self.closed: bool | None = None  # close()'s autocommit argument
        self.fetching = True  # False: polls return nothing, as a client that stopped fetching
        self._next: set[TopicPartition] | None = None  # assignment due in the next poll

    def append(self, partition: TopicPartition, *values: bytes | None) -> None:
        """Produce ``values`` to ``partition``, keyed k<offset>."""
        log = self.log[partition]
        for v in values:
            offset = len(log)
            log.append(FakeRecord(partition.topic, partition.partition, offset, b"k%d" % offset, v))

    def rebalance(self, *partitions: int) -> None:
        """Revoke everything and assign these partition numbers of every subscribed topic
        during the next poll."""
        self._next = {
            p for p in self.log if p.topic in self.subscribed and p.partition in partitions
        }

    # -- ConsumerClient ------------------------------------------------------
    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.subscribed, self.listener = list(topics), listener
        self._next = {p for p in self.log if p.topic in topics}

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Any]]:
        if self.errors:
            raise self.errors.pop(0)
        if self._next is not None:
            self._rebalance(self._next)
        self.paused_at_poll.append(frozenset(self.paused))
        batch: dict[TopicPartition, list[Any]] = {}
        for part in sorted(self.assigned - self.paused) if self.fetching else ():
            pos = self.position.setdefault(part, 0)
            records = self.log[part][pos : pos + self.max_records]
            if records:
                batch[part] = records
                self.position[part] = pos + len(records)
        if not batch:  # an empty poll waits out its timeout
            self.clock.sleep(max(timeout_ms / 1000, 0.001))
        return batch

    def _rebalance(self, new: set[TopicPartition]) -> None:
        self._next = None
        try:
            if self.assigned:
                self.listener.on_partitions_revoked(sorted(self.assigned))
            self.assigned, self.paused = new, self.paused & new
            for part in new:
                self.position.pop(part, None)
            self.listener.on_partitions_assigned(sorted(new))
        except Exception as exc:
            raise KafkaError("User rebalance callback throws an error") from exc

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if partition not in self.assigned:
            raise AssertionError(f"seek on unassigned {partition}")
        self.seeks.append((partition, offset))
        self.position[partition] = offset

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for part in partitions:
            self.seek(part, 0)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        for part in partitions:
            self.seek(part, len(self.log[part]))

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused -= set(partitions)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def commit_async(self, offsets: Mapping[TopicPartition, Any]) -> None:
        self.commits.append({part: meta.offset for part, meta in offsets.items()})

    def highwater(self, partition: TopicPartition) -> int | None:
        return len(self.log[partition])

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {p.partition for p in self.log if p.topic == topic} or None

    def close(self, autocommit: bool = True) -> None:
        self.closed = autocommit


@dataclass(frozen=True, slots=True)
class FakeFuture:
    is_done: bool
    _failed: bool

    def failed(self) -> bool:
        return self._failed


class FakeProducer:
    """Keeps what is sent; ``failing`` says how many of the next sends the broker rejects.

    Like kafka-python, ``send`` refuses a message larger than ``max_request_size``.
    """

    def __init__(self, max_request_size: int = 1_048_576) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.failing = 0
        self.closed = False
        self.max_request_size = max_request_size

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> FakeFuture:
        size = len(value) + len(key or b"")
        if size > self.max_request_size:
            raise MessageSizeTooLargeError(f"the message is {size} bytes when serialized")
        self.sent.append((topic, key, value))
        failed, self.failing = self.failing > 0, max(self.failing - 1, 0)
        return FakeFuture(is_done=True, _failed=failed)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True

    def values(self, topic: str | None = None) -> Sequence[bytes]:
        return [v for t, _, v in self.sent if topic is None or t == topic]


def _conforms(
    consumer: FakeConsumer, producer: FakeProducer, clock: FakeClock
) -> tuple[ConsumerClient, ProducerClient, Clock]:
    """Never called: mypy checks here that the fakes satisfy the protocols."""
    return consumer, producer, clock
