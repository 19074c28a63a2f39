"""A limit on failed sign-ins and unknown bearer tokens, per client address.

Each address may fail ``attempts`` times within a fixed window of ``period``
seconds that starts at its first failure; past that, every token it presents is
refused with 429 and ``Retry-After`` (the seconds left in the window) before the
token is even looked at, so guessing gains nothing. Requests with a known token
never count. At most ``clients`` addresses are tracked: the one that failed least
recently is forgotten first, so memory stays bounded whatever the number of
addresses. Behind a proxy every client shares the proxy's address (uvicorn takes
``X-Forwarded-For`` only from trusted proxies), so the limit applies to them together.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(slots=True)
class _Window:
    start: float
    failures: int


class Throttle:
    def __init__(
        self, attempts: int, period: float, clients: int, clock: Callable[[], float]
    ) -> None:
        if attempts < 1 or period <= 0 or clients < 1:
            raise ValueError("attempts and clients must be >= 1 and period > 0")
        self.attempts = attempts
        self.period = period
        self.clients = clients
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        # Routes run on uvicorn's event loop and on its thread pool alike.
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Raise TooManyAttempts while ``client`` has used up its failures."""
        with self._lock:
            now = self._clock()
            window = self._current(client, now)
            if window is not None and window.failures >= self.attempts:
                raise TooManyAttempts(max(1, math.ceil(window.start + self.period - now)))

    def failed(self, client: str) -> None:
        """Count one failure of ``client``."""
        with self._lock:
            now = self._clock()
            window = self._current(client, now)
            if window is None:
                window = self._windows[client] = _Window(now, 0)
                while len(self._windows) > self.clients:
                    self._windows.popitem(last=False)
            window.failures += 1
            self._windows.move_to_end(client)

    def tracked(self) -> int:
        """How many addresses are tracked now (bounded by ``clients``)."""
        return len(self._windows)

    def _current(self, client: str, now: float) -> _Window | None:
        window = self._windows.get(client)
        if window is not None and now - window.start >= self.period:
            del self._windows[client]
            return None
        return window
