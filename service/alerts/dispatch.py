"""Sending: every channel's requests run concurrently, each under a total deadline.

An event loop on its own thread runs the HTTP calls; the worker's thread keeps
the SQL bookkeeping and waits for the outcomes. Per channel, a semaphore admits
``concurrency`` requests at once, so one slow or dead receiver holds only its own
channel's slots. Each request runs under ``asyncio.timeout(deadline)``: httpx's
``timeout`` is per network operation, so a receiver that trickles one byte a
second would otherwise hold a request (and its slot) for as long as it likes.

Whatever one send does (raise, hang, answer nonsense) becomes that delivery's
:class:`~service.alerts.base.Outcome`; nothing escapes into the pass. A send that
is not started (the pass's budget spent, leadership lost, shutting down) returns
None: it is not an attempt. On :meth:`Dispatcher.close` the sends still running
after the grace period are cancelled, which closes their connections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from service.alerts.base import Alert, Channel, Outcome
from service.alerts.masking import redact
from service.alerts.rules import Limits

T = TypeVar("T")
Sent = concurrent.futures.Future[Outcome | None]


class Dispatcher:
    def __init__(
        self,
        channels: Mapping[str, Channel],
        limits: Callable[[str], Limits],
        is_leader: Callable[[], bool],
        secrets: Sequence[str] = (),
    ) -> None:
        self._channels = channels
        self._secrets = secrets
        self._limits = limits
        self._is_leader = is_leader
        self._closing = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._slots = {name: asyncio.Semaphore(limits(name).concurrency) for name in channels}
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="alerts-dispatch", daemon=True
        )
        self._thread.start()
        self._inflight: set[Sent] = set()
        self._lock = threading.Lock()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def budget(self) -> float:
        """The loop time after which a pass starts no new send: one deadline from now."""
        longest = max((self._limits(c).deadline for c in self._channels), default=0.0)
        return self._loop.time() + longest

    def submit(self, channel: str, alert: Alert, now: datetime, budget: float) -> Sent:
        future = self._run(self._send(channel, alert, now, budget))
        with self._lock:
            self._inflight.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Sent) -> None:
        with self._lock:
            self._inflight.discard(future)

    async def _send(
        self, channel: str, alert: Alert, now: datetime, budget: float
    ) -> Outcome | None:
        deadline = self._limits(channel).deadline
        async with self._slots[channel]:
            # Checked per delivery, not once per pass: a pass may outlive its leadership.
            if self.closing or self._loop.time() > budget or not self._is_leader():
                return None
            try:
                async with asyncio.timeout(deadline):
                    outcome = await self._channels[channel].send(alert, now)
            except TimeoutError:
                late = f"no complete answer within the {deadline:g} s deadline"
                return Outcome(False, True, late)
            except Exception as exc:  # contained: stored as this delivery's failed attempt
                outcome = Outcome(False, True, f"{type(exc).__name__}: {exc}")
        if outcome.error is None:
            return outcome
        # Every channel's secrets, not only this one's: the text is stored and logged.
        error = redact(outcome.error, self._secrets)
        return Outcome(outcome.ok, outcome.retriable, error, outcome.retry_after)

    def stop(self) -> None:
        """Start no more sends; those already running go on."""
        self._closing.set()

    def close(self, grace: float) -> bool:
        """Stop starting sends, let those in flight finish for up to ``grace`` seconds,
        cancel the rest, close the channels. True when nothing had to be cancelled."""
        self._closing.set()
        with self._lock:
            pending = set(self._inflight)
        _, late = concurrent.futures.wait(pending, timeout=grace)
        for future in late:
            future.cancel()
        # If closing hangs, the process is ending: an unclosed client leaks its sockets till then.
        with contextlib.suppress(
            concurrent.futures.TimeoutError, concurrent.futures.CancelledError
        ):
            self._run(self._close_channels()).result(timeout=max(grace, 1.0))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=max(grace, 1.0))
        return not late

    async def _close_channels(self) -> None:
        # One channel failing to close must not leave the others open.
        await asyncio.gather(*(c.close() for c in self._channels.values()), return_exceptions=True)

    def _run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)
