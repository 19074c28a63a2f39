"""The dead-letter publisher when its topic never answers: bounded waits, nothing lost."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError

from consumers.dlq import DeadLetterPublisher
from consumers.errors import DeadLetterError
from consumers.fakes import FakeClock, FakeFuture, FakeProducer


class BlockingProducer(FakeProducer):
    """While ``blocking``, the topic's metadata never comes: each send blocks for
    kafka-python's max_block_ms (5 s of the fake clock), then fails."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock, self.attempts, self.blocking = clock, 0, True

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> FakeFuture:
        self.attempts += 1
        if not self.blocking:
            return super().send(topic, value, key)
        self.clock.sleep(5.0)
        raise KafkaTimeoutError("Failed to update metadata after 5.0 secs.")


def test_a_dead_letter_topic_that_never_answers_blocks_once_per_confirm() -> None:
    clock = FakeClock(0.0)
    producer = BlockingProducer(clock)
    dlq = DeadLetterPublisher(lambda: producer, "dead-letters", monotonic=clock.monotonic)
    for i in range(3):
        dlq.publish(b"k", b"letter %d" % i)  # no producer yet: nothing sent
    with pytest.raises(DeadLetterError):
        dlq.confirm(timeout=10.0)
    # One send found the topic unreachable; the others wait for the next confirm.
    assert producer.attempts == 1 and clock.monotonic() <= 10.0
    dlq.publish(b"k", b"letter 3")  # the poll is not held by a send bound to fail
    assert producer.attempts == 1
    with pytest.raises(DeadLetterError):
        dlq.confirm(timeout=10.0)
    assert producer.attempts == 2
    producer.blocking = False
    dlq.confirm(timeout=10.0)
    assert producer.values("dead-letters") == [b"letter %d" % i for i in range(4)]
    dlq.confirm(timeout=10.0)  # nothing pending: nothing sent twice
    assert len(producer.sent) == 4
