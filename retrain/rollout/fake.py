"""The ``fake`` router: in memory, for tests of what drives a router.

It records every call, serves the split it was last told, and can be told to
misbehave the way real backends do: stay not-done for a number of promote or
rollback calls (Pods that take ticks to become available), or fail the next call
with a retriable or fatal :class:`RouterError`. A promotion or rollback changes the
split only when it reports done, as a backend that waits for availability does.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrain.errors import RouterError
from retrain.rollout.base import Progress, Split, Target, check_percent


@dataclass(frozen=True, slots=True)
class Call:
    """One call: the method's name and its arguments."""

    method: str
    args: tuple[Target | int, ...]


class FakeRouter:
    """Serves ``stable``/``canary`` at ``canary_percent``; ``calls`` lists every call."""

    def __init__(self, stable: Target | None = None) -> None:
        self.stable = stable
        self.canary: Target | None = None
        self.canary_percent = 0
        self.calls: list[Call] = []
        self._pending = 0
        self._failure: RouterError | None = None

    def hold(self, calls: int) -> None:
        """The next ``calls`` promote or rollback calls report not done."""
        self._pending = calls

    def fail_next(self, *, retriable: bool, message: str = "injected failure") -> None:
        """The next call, whichever it is, raises :class:`RouterError`."""
        self._failure = RouterError(message, retriable=retriable)

    def set_weights(self, stable: Target, canary: Target, canary_percent: int) -> Split:
        self._enter("set_weights", stable, canary, canary_percent)
        check_percent(canary_percent)
        self.stable, self.canary, self.canary_percent = stable, canary, canary_percent
        return self._split()

    def get_weights(self) -> Split:
        self._enter("get_weights")
        return self._split()

    def _split(self) -> Split:
        return Split(
            self.canary_percent,
            self.stable.version if self.stable is not None else None,
            self.canary.version if self.canary is not None else None,
        )

    def promote(self, candidate: Target) -> Progress:
        self._enter("promote", candidate)
        return self._finish(candidate)

    def rollback(self, stable: Target) -> Progress:
        self._enter("rollback", stable)
        return self._finish(stable)

    def _finish(self, stable: Target) -> Progress:
        if self._pending > 0:
            self._pending -= 1
            return Progress(False, f"fake router: held for {self._pending + 1} more call(s)")
        self.stable, self.canary, self.canary_percent = stable, None, 0
        return Progress(True)

    def _enter(self, method: str, *args: Target | int) -> None:
        self.calls.append(Call(method, args))
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
