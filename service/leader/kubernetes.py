"""Leader election on a ``coordination.k8s.io/v1`` Lease, with the official client's
``kubernetes.leaderelection`` (``LeaderElection`` over a ``LeaseLock``).

The library's ``run()`` campaigns until it holds the Lease, renews it every
``retry_period``, and returns once it could not renew for ``renew_deadline``;
it never comes back by itself, and an error that is not an ``ApiException``
(connection refused, a timeout) escapes it. So it runs here in a loop in a daemon
thread: after it returns or raises, this replica is a follower again and
campaigns anew. Three things the library leaves open are closed here:

- every request carries ``request_timeout``, so a hung API server cannot hold the
  thread (the library passes none);
- :meth:`LeaseElector.is_leader` also requires a successful renewal within
  ``renew_deadline``, so a renewal that is stuck never leaves a stale leader;
- :meth:`LeaseElector.stop` ends the campaign (the lock refuses further calls)
  and clears the holder, so another replica takes over at its next retry
  instead of after ``lease_duration``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

_STOP_WAIT = 1.0  # seconds; within the service's shutdown budget
# The library logs every follower's retry at INFO; transitions are logged here instead.
logging.getLogger("leaderelection").setLevel(logging.WARNING)


class _Stopped(Exception):
    """Raised inside the library's loop to end it when the elector stops."""


class _TimedCoordination(client.CoordinationV1Api):
    """The Lease calls the lock makes, each with a request timeout."""

    def __init__(self, api_client: client.ApiClient, timeout: float) -> None:
        super().__init__(api_client)
        self._timeout = timeout

    def read_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        return super().read_namespaced_lease(*args, **kwargs)

    def create_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        return super().create_namespaced_lease(*args, **kwargs)

    def replace_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        return super().replace_namespaced_lease(*args, **kwargs)


class _Lock(LeaseLock):
    """The library's LeaseLock on our API client, noting each renewal that succeeded."""

    def __init__(
        self,
        api: client.CoordinationV1Api,
        name: str,
        namespace: str,
        identity: str,
        stopping: threading.Event,
        renewed: Callable[[], None],
    ) -> None:
        super().__init__(name, namespace, identity)  # type: ignore[no-untyped-call]
        self.api_instance = api
        self._stopping = stopping
        self._renewed = renewed

    def get(self, name: str, namespace: str) -> Any:
        if self._stopping.is_set():
            raise _Stopped
        return super().get(name, namespace)  # type: ignore[no-untyped-call]

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        done = bool(super().create(name, namespace, election_record))  # type: ignore[no-untyped-call]
        if done:
            self._renewed()
        return done

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        done = bool(super().update(name, namespace, updated_record))  # type: ignore[no-untyped-call]
        if done:
            self._renewed()
        return done


class LeaseElector:
    backend = "kubernetes"

    def __init__(
        self,
        api_client: client.ApiClient,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        request_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.namespace, self.identity = name, namespace, identity
        self._api = _TimedCoordination(api_client, request_timeout)
        # The library writes the duration into the Lease's integer leaseDurationSeconds.
        self._durations = (int(lease_duration), renew_deadline, retry_period)
        self._timeout = request_timeout
        self._clock = clock
        self._leading = False
        self._renewed_at = float("-inf")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-lease", daemon=True)

    def is_leader(self) -> bool:
        return self._leading and self._clock() - self._renewed_at < self._durations[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        # The library sleeps between attempts where it cannot be woken; the release need
        # not wait for it: a renewal racing the release loses on the resourceVersion
        # (409), or makes the release lose, and the Lease then expires by itself.
        if self._thread.is_alive():
            self._thread.join(timeout=_STOP_WAIT)
        was_leading, self._leading = self._leading, False
        if was_leading:
            self._release()

    def _run(self) -> None:
        lease_duration, renew_deadline, retry_period = self._durations
        while not self._stopping.is_set():
            lock = _Lock(
                self._api, self.name, self.namespace, self.identity, self._stopping, self._renew
            )
            config = electionconfig.Config(  # type: ignore[no-untyped-call]
                lock,
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
                onstarted_leading=self._started,
                onstopped_leading=self._stopped,
            )
            try:
                election = leaderelection.LeaderElection(config)  # type: ignore[no-untyped-call]
                election.run()  # type: ignore[no-untyped-call]
            except _Stopped:
                return
            except (HTTPError, OSError) as exc:  # the library lets transport errors escape
                if self._leading:
                    log.warning("leader: leadership lost, the API server is unreachable: %s", exc)
                else:
                    log.debug("leader: campaign failed, retrying: %s", exc)
                self._leading = False
            except Exception:  # a bug must not end campaigning for good
                log.exception("leader: campaign failed, retrying")
                self._leading = False
            self._stopping.wait(retry_period)

    def _renew(self) -> None:
        self._renewed_at = self._clock()

    def _started(self) -> None:
        self._leading = True
        log.info("leader: %s holds Lease %s/%s", self.identity, self.namespace, self.name)

    def _stopped(self) -> None:
        self._leading = False
        log.warning(
            "leader: %s could not renew Lease %s/%s; following again",
            self.identity,
            self.namespace,
            self.name,
        )

    def _release(self) -> None:
        """Clear the holder (if it is still us), so a follower takes over at once."""
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            self._api.replace_namespaced_lease(self.name, self.namespace, lease)
            log.info("leader: released Lease %s/%s", self.namespace, self.name)
        except (ApiException, HTTPError, OSError) as exc:  # the Lease then expires by itself
            log.warning("leader: releasing Lease %s/%s failed: %s", self.namespace, self.name, exc)
