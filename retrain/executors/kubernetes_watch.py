"""A list + watch cache of the executor's Jobs (an informer, minimally).

One daemon thread lists the Jobs labelled ``app.kubernetes.io/managed-by=
driftwatch`` in the namespace, then watches from the list's resourceVersion,
resuming from the last one seen (events and bookmarks); a 410 Gone re-lists, and
so does a periodic resync. The cache is a hint: the executor decides from the
current object, read when the cache says a Job is no longer running.

A failed list or watch (403 after an RBAC change, a dropped connection, a
server error) is logged (a warning when a streak of failures begins, then
debug), handed to ``on_error`` (the service counts it,
``driftwatch_kubernetes_watch_errors_total``), and marks the cache not
:attr:`~JobCache.healthy` until a list succeeds or the watch delivers again:
meanwhile the executor reads each Job itself, so a dead watch slows nothing but
never leaves a finished Job looking as if it ran.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

MANAGED = "app.kubernetes.io/managed-by=driftwatch"
log = logging.getLogger(__name__)


def _ignore(reason: str) -> None:
    pass


class JobCache:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        *,
        resync_seconds: float = 300.0,
        watch_seconds: int = 30,
        request_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._api = client.BatchV1Api(api_client)
        self.namespace = namespace
        self.resync_seconds = resync_seconds
        self.watch_seconds = watch_seconds
        self.request_timeout = request_timeout
        self._clock = clock
        # The pause after a failure ends early when the cache stops.
        self._sleep = sleep or self._stop_wait
        self._lock = threading.Lock()
        self._jobs: dict[str, Any] = {}
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: watch.Watch | None = None
        self._response: Any = None  # the watch request in flight, to cut at stop()
        self._on_error = on_error or _ignore
        self.relists = 0
        self.errors = 0
        self._failing = False

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="k8s-jobs", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following and wait up to ``timeout`` seconds for the thread to end.

        A watch blocks reading until the server sends an event or ends the request
        (``watch_seconds``); left to run, the thread would outlive its owner and retry
        against a server that may be gone. The client's ``Watch.stop`` shuts down the
        socket of the response it holds; the response is cut here too, since the
        watch only holds it once the request has returned, a moment after this cache.
        A list under way is not cut: it ends within its ``request_timeout``, and the
        thread is a daemon, so a stopping service waits ``timeout`` at most.
        """
        with self._lock:
            self._stop.set()
            response = self._response
        w = self._watch
        if w is not None:
            w.stop()  # type: ignore[no-untyped-call]
        if response is not None:
            _cut(response)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the following thread is alive (started and not yet ended)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    @property
    def healthy(self) -> bool:
        """Listed, not stopped, and no list or watch has failed since the last that worked."""
        return self._synced.is_set() and not self._failing and not self._stop.is_set()

    def get(self, name: str) -> Any | None:
        """The cached Job (a ``V1Job``) or None."""
        with self._lock:
            return self._jobs.get(name)

    def _run(self) -> None:
        rv: str | None = None
        listed_at = 0.0
        backoff = 0.1
        while not self._stop.is_set():
            try:
                if rv is None or self._clock() - listed_at >= self.resync_seconds:
                    rv = self._list()
                    listed_at = self._clock()
                rv = self._follow(rv)
                backoff = 0.1
            except ApiException as exc:
                if self._stop.is_set():
                    break
                if exc.status == 410:
                    rv = None  # history compacted: re-list, then watch from there
                    continue
                self._failed(f"{exc.status} {exc.reason}")
            except Exception as exc:  # a dropped connection: the next pass reconnects
                if self._stop.is_set():
                    break  # the read stop() cut short
                self._failed(repr(exc))
            else:
                continue
            self._sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _failed(self, reason: str) -> None:
        self.errors += 1
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        log.log(
            level,
            "watching Jobs in namespace %s failed (%s); reading each Job directly until it "
            "recovers",
            self.namespace,
            reason,
        )
        self._on_error(reason)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("watching Jobs in namespace %s works again", self.namespace)

    def _list(self) -> str:
        listing = self._api.list_namespaced_job(
            self.namespace, label_selector=MANAGED, _request_timeout=self.request_timeout
        )
        with self._lock:
            self._jobs = {str(j.metadata.name): j for j in listing.items if j.metadata}
        self.relists += 1
        self._synced.set()
        self._recovered()
        return str(listing.metadata.resource_version if listing.metadata else "")

    def _follow(self, rv: str) -> str:
        w = self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in w.stream(  # type: ignore[no-untyped-call]
                self._watch_call,
                self.namespace,
                label_selector=MANAGED,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_seconds,
                # Connect, then each read: the server ends the watch after watch_seconds,
                # so a read waiting longer than that is a connection gone quiet.
                _request_timeout=(self.request_timeout, self.watch_seconds + self.request_timeout),
            ):
                if self._stop.is_set():
                    break
                self._recovered()
                kind, job = event["type"], event["object"]
                if kind in ("ADDED", "MODIFIED"):
                    with self._lock:
                        self._jobs[job.metadata.name] = job
                elif kind == "DELETED":
                    with self._lock:
                        self._jobs.pop(job.metadata.name, None)
                rv = str(w.resource_version or rv)
        finally:
            with self._lock:
                self._response = None
        return rv

    @functools.wraps(client.BatchV1Api.list_namespaced_job)
    def _watch_call(self, *args: Any, **kwargs: Any) -> Any:
        """The watch request, kept where :meth:`stop` can cut it. Wrapped so the watch
        still finds the list call's return type (``V1JobList``) in its docstring."""
        response = self._api.list_namespaced_job(*args, **kwargs)
        with self._lock:
            self._response = response
            stopped = self._stop.is_set()
        if stopped:  # stop() came between the check and the request: it cut nothing
            _cut(response)
        return response

    def _stop_wait(self, seconds: float) -> None:
        self._stop.wait(seconds)


def _cut(response: Any) -> None:
    """End a blocked read of ``response`` from another thread (urllib3's shutdown);
    a response already released or closed needs nothing."""
    with contextlib.suppress(Exception):
        response.shutdown()
