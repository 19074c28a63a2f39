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
after the grace period are abandoned: their futures get None at once, whatever the
order in which their cancellation, the closing of the clients and the stopping of
the loop then reach them (a send cut by its closed client ends in an ordinary error,
which must not count as an attempt), and a send registered after the grace period's
snapshot is abandoned too. Then they are cancelled, which closes their connections.
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
# How long a cancelled send may take to unwind (and close its connection) before the
# channels' clients are closed under it.
_UNWIND = 1.0


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
        # The futures handed out and not yet settled; a future is registered before its
        # send is scheduled, so close() always sees it, and settled once, under the lock.
        self._inflight: set[Sent] = set()
        self._abandoned = False
        self._lock = threading.Lock()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def budget(self) -> float:
        """The loop time after which a pass starts no new send: one deadline from now."""
        longest = max((self._limits(c).deadline for c in self._channels), default=0.0)
        return self._loop.time() + longest

    def submit(self, channel: str, alert: Alert, now: datetime, budget: float) -> Sent:
        sent: Sent = concurrent.futures.Future()
        with self._lock:
            if self._abandoned:
                sent.set_result(None)  # closed: never started, so not an attempt
                return sent
            self._inflight.add(sent)
            self._run(self._deliver(sent, channel, alert, now, budget))
        return sent

    async def _deliver(
        self, sent: Sent, channel: str, alert: Alert, now: datetime, budget: float
    ) -> None:
        outcome: Outcome | None = None  # cancelled or broken: not an attempt
        try:
            outcome = await self._send(channel, alert, now, budget)
        finally:
            self._settle(sent, outcome)

    def _settle(self, sent: Sent, outcome: Outcome | None) -> None:
        with self._lock:
            mine = sent in self._inflight
            self._inflight.discard(sent)
        if mine:  # else close() abandoned it first: whatever it ended in was not an attempt
            sent.set_result(outcome)

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
        abandon the rest (their futures get None), cancel them, close the channels. True
        when nothing had to be abandoned."""
        self._closing.set()
        with self._lock:
            pending = set(self._inflight)
        concurrent.futures.wait(pending, timeout=grace)
        with self._lock:
            # Before any cancellation or client close can reach a send: what a send ends
            # in from here on is an effect of the shutdown, never an attempt.
            self._abandoned = True
            late, self._inflight = self._inflight, set()
        for sent in late:
            sent.set_result(None)
        # If closing hangs, the process is ending: an unclosed client leaks its sockets till then.
        with contextlib.suppress(
            concurrent.futures.TimeoutError, concurrent.futures.CancelledError
        ):
            self._run(self._shutdown()).result(timeout=max(grace, 1.0) + _UNWIND)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=max(grace, 1.0))
        return not late

    async def _shutdown(self) -> None:
        # Every task on this loop but this one is a send; all were scheduled before the
        # abandonment, so before this. Cancelling closes their connections.
        sends = asyncio.all_tasks() - {asyncio.current_task()}
        for task in sends:
            task.cancel()
        if sends:
            await asyncio.wait(sends, timeout=_UNWIND)
        await self._close_channels()

    async def _close_channels(self) -> None:
        # One channel failing to close must not leave the others open.
        await asyncio.gather(*(c.close() for c in self._channels.values()), return_exceptions=True)

    def _run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)
