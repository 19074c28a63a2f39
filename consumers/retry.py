"""Riding out outages: exponential backoff, and one health flag over the loop's dependencies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from consumers.errors import ConsumerError
from consumers.stats import IngestStats
from db.errors import StoreError

log = logging.getLogger(__name__)


class Dependency(StrEnum):
    KAFKA = "kafka"
    STORE = "store"
    DEAD_LETTERS = "dead_letters"


class Backoff:
    """Waits that double from ``first`` up to ``cap``, until :meth:`reset`."""

    def __init__(self, cap: float, first: float = 0.5) -> None:
        self.first, self.cap = first, cap
        self.current = first

    def next(self) -> float:
        """The wait to take now; the one after it doubles."""
        wait = self.current
        self.current = min(self.current * 2, self.cap)
        return wait

    def reset(self) -> None:
        self.current = self.first


class Health:
    """Reports healthy while every dependency answered its last call."""

    def __init__(self, stats: IngestStats) -> None:
        self._stats = stats
        self._down: set[Dependency] = set()

    def is_up(self, dependency: Dependency) -> bool:
        return dependency not in self._down

    def up(self, *dependencies: Dependency) -> None:
        self._down.difference_update(dependencies)
        self._stats.healthy(not self._down)

    def down(self, dependency: Dependency) -> None:
        self._down.add(dependency)
        self._stats.healthy(False)


class ShutdownBudget:
    """Deadlines of the flushes that must end soon: a rebalance's, a budget from now
    each time; once ``stopping()``, the stopping loop's, one budget from when the stop
    was first met, however many flushes it spans."""

    def __init__(
        self, budget: float, monotonic: Callable[[], float], stopping: Callable[[], bool]
    ) -> None:
        self._budget, self._monotonic, self._stopping = budget, monotonic, stopping
        self._stop_by: float | None = None

    def deadline(self) -> float:
        if not self._stopping():
            return self._monotonic() + self._budget
        if self._stop_by is None:
            self._stop_by = self._monotonic() + self._budget
        return self._stop_by

    def bounding(self, deadline: float | None) -> Callable[[], float | None]:
        """A flush's deadline as :func:`retrying_until` asks for it: ``deadline``, or for a
        flush without one, the stop's once it is met (a store down for good must not keep
        a stopping process retrying until it is killed)."""

        def by() -> float | None:
            if deadline is None and self._stopping():
                return self.deadline()
            return deadline

        return by


def retriable(exc: BaseException) -> bool:
    """A failure of the store or of Kafka that a later attempt may not meet again."""
    return isinstance(exc, (StoreError, ConsumerError)) and exc.retriable


def retrying_until(
    deadline: Callable[[], float | None],
    monotonic: Callable[[], float],
    max_backoff: float,
    sleep: Callable[[float], None],
    on_failure: Callable[[BaseException], None],
) -> Retrying:
    """A flush retrier: retriable failures are retried after 0.5 s, doubling up to
    ``max_backoff`` (which bounds the first wait too), until the next wait would end past
    ``deadline()`` (None: never; asked before each wait, so a stop can set one while the
    retries go on); then the call answers False. Other errors propagate.
    ``sleep`` waits (the loop keeps polling meanwhile); ``on_failure`` sees each retried one."""

    def failed(state: RetryCallState) -> None:
        on_failure(_exception(state))

    def past_deadline(state: RetryCallState) -> bool:
        by = deadline()
        return by is not None and monotonic() + state.upcoming_sleep > by

    def give_up(state: RetryCallState) -> bool:
        log.error("giving up flushing; unflushed events will be read again")
        return False

    def announce(state: RetryCallState) -> None:
        log.warning("flush failed, retrying in %.1fs: %s", state.upcoming_sleep, _exception(state))

    return Retrying(
        retry=retry_if_exception(retriable),
        wait=wait_exponential(multiplier=0.5, max=max_backoff),
        stop=past_deadline,
        sleep=sleep,
        after=failed,
        before_sleep=announce,
        retry_error_callback=give_up,
    )


def _exception(state: RetryCallState) -> BaseException:
    exc = None if state.outcome is None else state.outcome.exception()
    assert exc is not None, "tenacity calls these hooks after a failed attempt only"
    return exc
