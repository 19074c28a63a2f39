"""The flush retrier: waits double from 0.5 s up to the cap, it gives up when the next
wait would end past the deadline, and only retriable failures are retried."""

from __future__ import annotations

import pytest
from tenacity import Retrying

from consumers.retry import retrying_until
from db.errors import IntegrityViolation, StoreUnavailable


class Scripted:
    """A flush that fails ``failures`` times, then succeeds; time moves only in sleeps."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.left = failures
        self.error = error or StoreUnavailable("down")
        self.now = 0.0
        self.sleeps: list[float] = []
        self.seen: list[BaseException] = []
        self.calls = 0

    def flush(self) -> bool:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise self.error
        return True

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def retrier(self, deadline: float | None, cap: float = 3.0) -> Retrying:
        return retrying_until(lambda: deadline, lambda: self.now, cap, self.sleep, self.seen.append)


def test_waits_double_up_to_the_cap_until_the_flush_succeeds() -> None:
    s = Scripted(failures=5)
    assert s.retrier(deadline=None)(s.flush) is True
    assert s.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(s.seen) == 5 and all(isinstance(e, StoreUnavailable) for e in s.seen)


def test_gives_up_when_the_next_wait_would_end_past_the_deadline() -> None:
    s = Scripted(failures=100)
    # Fails at 0, 0.5, 1.5 and 3.5; the next wait (3 s) would end at 6.5 > 5.
    assert s.retrier(deadline=5.0)(s.flush) is False
    assert (s.calls, s.sleeps, s.now) == (4, [0.5, 1.0, 2.0], 3.5)


def test_a_failure_that_is_not_retriable_propagates_at_once() -> None:
    s = Scripted(failures=1, error=IntegrityViolation("a bug"))
    with pytest.raises(IntegrityViolation):
        s.retrier(deadline=None)(s.flush)
    assert (s.calls, s.sleeps, s.seen) == (1, [], [])
