"""What the ingestion loop needs from Kafka and from time, as small protocols.

kafka-python's :class:`~kafka.KafkaConsumer` and :class:`~kafka.KafkaProducer`
satisfy :class:`ConsumerClient` and :class:`ProducerClient` (they are untyped,
so that part is unchecked); :mod:`consumers.fakes` ships fakes of both that
mypy checks against these protocols, for tests and experiments.

:class:`Clock` is the loop's only source of time: the wall clock stamps and
bounds event time, the monotonic one paces flushes and backoff, and waits go
through it so that a fake clock can stand in for all of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from kafka import TopicPartition


class Record(Protocol):
    """One consumed message (kafka-python's ``ConsumerRecord`` has these and more)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class ConsumerClient(Protocol):
    """The part of :class:`kafka.KafkaConsumer` the ingestion loop uses."""

    def subscribe(self, topics: list[str], listener: Any = None) -> None: ...
    def poll(self, timeout_ms: int = 0) -> Mapping[TopicPartition, list[Any]]: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...
    def seek_to_end(self, *partitions: TopicPartition) -> None: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def resume(self, *partitions: TopicPartition) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    def commit_async(self, offsets: Mapping[TopicPartition, Any]) -> Any: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    def partitions_for_topic(self, topic: str) -> set[int] | None: ...
    def close(self, autocommit: bool = True) -> None: ...


class SendFuture(Protocol):
    """What is read of the future :meth:`ProducerClient.send` returns."""

    @property
    def is_done(self) -> bool: ...
    def failed(self) -> bool: ...


class ProducerClient(Protocol):
    """The part of :class:`kafka.KafkaProducer` the dead-letter publisher uses."""

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> SendFuture: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch: for event time and stamps."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: for intervals and deadlines."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait ``seconds`` or until ``stop`` is set; whether it is set."""
        ...


class SystemClock:
    """The process's clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(seconds)


SYSTEM_CLOCK = SystemClock()
