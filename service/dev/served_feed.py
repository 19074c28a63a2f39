"""The closed loop's event feed: a real-model scenario served by the demo's model server.

Every prediction event is scored by :class:`service.dev.model_server.ModelServer`, which
reads the ``file`` router's JSON: before a rollout it serves the champion alone; once
the service's rollout sets a split, the canary (the accepted candidate) serves the
share of requests the file says, and after promotion the candidate serves them all.
The version served is stamped as ``model_version``, which the rollout's analysis and
the performance windows split the stream by.

The feed runs in a thread: first a burst of the scenario's history (event times in
the recent past, the pre-drift events acknowledged before the post-drift ones are
sent), then a live stream (event time = the wall clock, paced to ``live_rate``) of the
changed world until :meth:`Feed.stop`. A rollout's steps are spans of wall-clock time,
so only a live stream gives them events. The server re-reads the file on every
request (``reread_ms=0``): an event stamped after the router's call returned (the
start of a step's span) is served at that step's split, whatever the machine's speed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from consumers.synthetic import SyntheticEvent, SyntheticPlan, produce
from service.dev.errors import LoopError
from service.dev.serving import ServedStream


class _From:
    """``stream``'s events from index ``first`` on, as a stream of its own for
    :func:`produce`, at ``rate`` events per second of event time."""

    def __init__(self, stream: ServedStream, first: int, rate: float | None = None) -> None:
        self.stream = stream
        self.first = first
        plan = stream.plan
        self.plan: SyntheticPlan = replace(
            plan, start=plan.start + first / plan.rate, rate=rate or plan.rate
        )

    def event(self, index: int, event_time: float) -> SyntheticEvent:
        return self.stream.event(self.first + index, event_time)


class Feed:
    """``before`` + ``after`` events of ``stream`` as a burst, then live events at
    ``live_rate`` per second, sent ``chunk`` at a time, until stopped, through a Kafka
    producer that ``producer()`` makes (acks from every replica)."""

    def __init__(
        self,
        producer: Callable[[], Any],
        stream: ServedStream,
        topics: tuple[str, str],
        before: int,
        after: int,
        live_rate: float,
    ) -> None:
        self.make_producer = producer
        self.stream = stream
        self.topics = topics
        self.before, self.after = before, after
        self.live_rate = live_rate
        self.change_sent: float | None = None  # when the first post-drift event was sent
        self.burst_sent = threading.Event()
        self.error: BaseException | None = None
        self._sent: Counter[int] = Counter()  # live events acknowledged, by window start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="served-feed", daemon=True)

    def start(self, timeout: float) -> float:
        """Start the feed; wait for the burst to be acknowledged. When the first post-drift
        event was sent (epoch seconds)."""
        self._thread.start()
        if not self.burst_sent.wait(timeout):
            raise LoopError(f"the scenario's burst was not sent in {timeout:.0f} s")
        self.check()
        assert self.change_sent is not None
        return self.change_sent

    def check(self) -> None:
        """Raise what stopped the feed, if anything did."""
        if self.error is not None:
            raise LoopError(f"the event feed failed: {self.error!r}") from self.error

    def sent(self) -> Counter[int]:
        """The live events acknowledged by the broker so far, by window start (epoch s)."""
        with self._lock:
            return Counter(self._sent)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        predictions, labels = self.topics
        producer: Any = self.make_producer()
        try:
            produce(producer, [self.stream], self.before, predictions, labels)
            self.change_sent = time.time()
            rest = _From(self.stream, self.before)
            produce(producer, [rest], self.after, predictions, labels)
            self.burst_sent.set()
            first, chunk = self.before + self.after, max(1, int(self.live_rate))
            while not self._stop.is_set():
                live = _From(self.stream, first, self.live_rate)
                report = produce(producer, [live], chunk, predictions, labels, realtime=True)
                with self._lock:
                    for (_, _, window), n in report.windows.items():
                        self._sent[window] += n
                first += chunk
        except BaseException as exc:  # reported to the waiting side by check()
            self.error = exc
            self.burst_sent.set()
        finally:
            producer.close()
