"""The ``kubernetes`` executor: each job is a ``batch/v1`` Job rendered from a template.

The template owns the image, command, resources, scheduling and volumes; this
module sets the deterministic name (:attr:`JobSpec.name`), the driftwatch
labels, the environment contract and defaults the template may override
(``backoffLimit`` 0, ``activeDeadlineSeconds`` from the phase timeout,
``ttlSecondsAfterFinished``). A 409 on create adopts the Job when its labels
name this run and mode. Jobs are followed by :class:`JobCache` (list + watch);
a terminal decision is always made from the Job as read now, and the result is
the terminated container's termination message, read from the Pod's status.

``observe`` reports a Job that does not exist as ``MISSING``, whether it was
never created or was deleted since (``ttlSecondsAfterFinished``, an operator):
the run's launch record in SQL tells the two apart (:mod:`retrain.phases`).

API errors are translated here: 5xx, 429, timeouts and refused connections are
retried a few times, then raised as a retriable :class:`ExecutorError` (the run
stays in its phase); 401, 403, 404 and 422 on create fail the job with a reason
that names the verb, resource or field, reported by ``observe``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from retrain.errors import ExecutorError
from retrain.executors.base import (
    LAST_LINE_BYTES,
    JobPhase,
    JobSpec,
    JobStatus,
    last_bytes,
    result_status,
    with_message,
)
from retrain.executors.kubernetes_watch import JobCache
from retrain.kubeclient import api_reason, is_retriable

MANAGED_BY = "app.kubernetes.io/managed-by"
TERMINATION_LOG = "/dev/termination-log"
TAIL_LINES = 50
TAIL_CHARS = 4096
# A Pod's log tail is read a chunk at a time and only its last LAST_LINE_BYTES are held;
# past LOG_READ_BYTES, or the request timeout, the Job is judged without its log.
LOG_CHUNK_BYTES = 64 << 10
LOG_READ_BYTES = 64 << 20
T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KubernetesSettings:
    """What the executor needs; the Job template is already parsed."""

    namespace: str
    template: Mapping[str, Any]
    result_path: str | None = None  # None: the container's termination-message path
    ttl_seconds: int = 86400
    resync_seconds: float = 300.0
    request_timeout: float = 10.0
    attempts: int = 3


def translate(exc: Exception, what: str) -> ExecutorError:
    """An API or transport error as an :class:`ExecutorError`, classed retriable or fatal."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        return ExecutorError(
            f"kubernetes API: {what}: {status} {api_reason(exc)}", retriable=is_retriable(exc)
        )
    return ExecutorError(f"kubernetes API: {what}: {exc}", retriable=True)


def render(spec: JobSpec, settings: KubernetesSettings) -> dict[str, Any]:
    """The Job for ``spec`` from the template; a template that cannot carry it raises a
    fatal :class:`ExecutorError` naming the field."""
    job = copy.deepcopy(dict(settings.template))
    if job.get("apiVersion") != "batch/v1" or job.get("kind") != "Job":
        raise _bad("apiVersion/kind", "expected apiVersion batch/v1 and kind Job")
    labels = {
        MANAGED_BY: "driftwatch",
        "driftwatch/model": _label(spec.model),
        "driftwatch/run": str(spec.run_id),
        "driftwatch/mode": spec.mode.value,
    }
    meta = job.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise _bad("metadata", "expected a mapping")
    meta.pop("generateName", None)
    meta["name"] = spec.name
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    body = job.setdefault("spec", {})
    body.setdefault("backoffLimit", 0)
    body.setdefault("activeDeadlineSeconds", max(1, int(spec.timeout.total_seconds())))
    body.setdefault("ttlSecondsAfterFinished", settings.ttl_seconds)
    pod = body.setdefault("template", {})
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_spec = pod.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Never")
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise _bad("spec.template.spec.containers", "expected at least one container")
    container = containers[0]
    path = settings.result_path or container.get("terminationMessagePath") or TERMINATION_LOG
    contract = spec.contract_env(path)
    kept = [e for e in container.get("env") or [] if e.get("name") not in contract]
    container["env"] = kept + [{"name": k, "value": v} for k, v in contract.items()]
    return job


def _bad(field: str, what: str) -> ExecutorError:
    return ExecutorError(f"retrain.kubernetes.template: {field}: {what}", retriable=False)


def _label(value: str) -> str:
    """A label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends
    (ASCII: ``str.isalnum`` is true for any script's letters and digits)."""
    clean = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "-" for c in value)
    clean = clean[:63]
    return clean.strip("._-") or "model"


class KubernetesExecutor:
    """Runs jobs as Kubernetes Jobs (see the module docstring)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        settings: KubernetesSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        cache: JobCache | None = None,
        on_watch_error: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._sleep = sleep
        self.cache = cache or JobCache(
            api_client,
            settings.namespace,
            resync_seconds=settings.resync_seconds,
            request_timeout=settings.request_timeout,
            on_error=on_watch_error,
        )
        self._refused: dict[str, str] = {}
        self._timeout = settings.request_timeout

    def close(self) -> None:
        """Stop following Jobs (the cache's thread ends before this returns)."""
        self.cache.stop()

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call`` with the retriable failures retried (doubling pauses); others raised."""
        pause = 0.2
        for attempt in range(1, self.settings.attempts + 1):
            try:
                return call()
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                error = translate(exc, what)
                if not error.retriable or attempt == self.settings.attempts:
                    raise error from exc
            self._sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")

    def launch(self, spec: JobSpec) -> bool:
        self.cache.start()
        try:
            job = render(spec, self.settings)
        except ExecutorError as exc:
            return self._refuse(spec, str(exc))
        what = f"create job {spec.name} in namespace {self.namespace}"
        try:
            body = client.V1Job.from_dict(job)
        except ValueError as exc:  # the client's models refuse wrong types (pydantic)
            return self._refuse(spec, f"retrain.kubernetes.template: not a valid Job: {exc}")
        if body is None:
            return self._refuse(spec, "retrain.kubernetes.template: not a Job")
        try:
            self._call(
                what,
                lambda: self._batch.create_namespaced_job(
                    self.namespace, body, _request_timeout=self._timeout
                ),
            )
        except ExecutorError as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and cause.status == 409:
                return self._adopt(spec)
            if exc.retriable:
                raise
            return self._refuse(spec, str(exc))
        self._refused.pop(spec.name, None)
        return True

    def _refuse(self, spec: JobSpec, reason: str) -> bool:
        """Remember why the job cannot exist, for ``observe``; in memory only, since the
        launch is not recorded: after a restart, launching again finds the same reason."""
        self._refused[spec.name] = reason
        return False

    def _adopt(self, spec: JobSpec) -> bool:
        """A 409: the name is taken; it is ours when its labels name this run and mode."""
        existing = self._read(spec)
        if existing is None:
            raise ExecutorError(f"job {spec.name} conflicted, then vanished", retriable=True)
        if not self._ours(existing, spec):
            return self._refuse(
                spec,
                f"job {spec.name} already exists in namespace {self.namespace} and belongs to "
                "another run (its driftwatch labels differ); delete it or use another namespace",
            )
        self._refused.pop(spec.name, None)
        return True

    def _ours(self, job: Any, spec: JobSpec) -> bool:
        labels = job.metadata.labels or {}
        return bool(
            labels.get(MANAGED_BY) == "driftwatch"
            and labels.get("driftwatch/run") == str(spec.run_id)
            and labels.get("driftwatch/mode") == spec.mode.value
        )

    def _read(self, spec: JobSpec) -> Any | None:
        try:
            return self._call(
                f"get job {spec.name} in namespace {self.namespace}",
                lambda: self._batch.read_namespaced_job(
                    spec.name, self.namespace, _request_timeout=self._timeout
                ),
            )
        except ExecutorError as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and cause.status == 404:
                return None
            raise

    def observe(self, spec: JobSpec) -> JobStatus:
        self.cache.start()
        refused = self._refused.get(spec.name)
        if refused is not None:
            return JobStatus(JobPhase.FAILED, refused)
        cached = self.cache.get(spec.name)
        if self.cache.healthy and cached is not None and _terminal(cached) is None:
            return JobStatus(JobPhase.RUNNING)  # the watch will say when it is not
        try:
            job = self._read(spec)
        except ExecutorError as exc:
            if exc.retriable:
                raise
            return JobStatus(JobPhase.FAILED, str(exc))
        if job is None:
            # Never created, or deleted (its TTL, an operator): the run's launch record
            # tells which, and survives a restart, which no memory of this process does.
            return JobStatus(JobPhase.MISSING)
        if not self._ours(job, spec):
            return JobStatus(JobPhase.FAILED, f"job {spec.name} belongs to another run")
        terminal = _terminal(job)
        if terminal is None:
            return JobStatus(JobPhase.RUNNING)
        return self._outcome(spec, job, terminal)

    def _outcome(self, spec: JobSpec, job: Any, condition: Any) -> JobStatus:
        pod = self._pod(spec, job, condition.type == "Complete")
        log = self._log_tail(pod) if pod is not None else None
        # The kept tail is bounded; the job's last line is taken before that cut.
        tail = log[-TAIL_CHARS:] if log else None
        terminated = _terminated(pod)
        if condition.type == "Complete":
            message = getattr(terminated, "message", None)
            return result_status(message.encode("utf-8") if message else None, tail)
        reason = condition.reason or "Failed"
        if condition.message:
            reason = f"{reason}: {condition.message}"
        code = getattr(terminated, "exit_code", None)
        if code is not None and reason.startswith("BackoffLimitExceeded"):
            reason = f"{reason} (exit code {code})"
        return JobStatus(JobPhase.FAILED, with_message(reason, log), tail)

    def _pod(self, spec: JobSpec, job: Any, complete: bool) -> Any | None:
        """The Pod to judge the Job by: the newest attempt by ``creationTimestamp`` (never by
        name: the suffixes are random), and for a Complete Job the newest that succeeded,
        since with ``backoffLimit > 0`` failed attempts precede it."""
        uid = job.metadata.uid if job.metadata else None
        selector = f"controller-uid={uid}" if uid else f"job-name={spec.name}"
        pods = self._call(
            f"list pods of job {spec.name} in namespace {self.namespace}",
            lambda: self._core.list_namespaced_pod(
                self.namespace, label_selector=selector, _request_timeout=self._timeout
            ),
        ).items
        if complete:
            pods = [p for p in pods if p.status and p.status.phase == "Succeeded"] or pods
        return max(pods, key=_created, default=None)

    def _log_tail(self, pod: Any) -> str | None:
        name = pod.metadata.name
        what = f"read the log of pod {name} in namespace {self.namespace}"
        try:
            # Unread (no _preload_content), the client's answer is urllib3's response.
            response = cast(
                urllib3.HTTPResponse,
                self._call(
                    what,
                    lambda: self._core.read_namespaced_pod_log(
                        name,
                        self.namespace,
                        tail_lines=TAIL_LINES,
                        _preload_content=False,
                        _request_timeout=self._timeout,
                    ),
                ),
            )
        except ExecutorError as exc:
            if exc.retriable:
                raise
            return None  # the Pod went with its Job: the reason still stands
        deadline = time.monotonic() + self._timeout
        try:
            chunks = response.stream(LOG_CHUNK_BYTES)
            tail = last_bytes(chunks, LAST_LINE_BYTES, LOG_READ_BYTES, deadline, time.monotonic)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate(exc, what) from exc
        finally:
            response.close()  # a tail given up on leaves its answer unread
            response.release_conn()
        if tail is None:
            logger.warning(
                "the log tail of pod %s is over %d bytes or took over %.0f s to read; "
                "the job is judged without it",
                name,
                LOG_READ_BYTES,
                self._timeout,
            )
            return None
        data, cut = tail
        text = data.decode("utf-8", errors="replace")
        if cut and "\n" in text.rstrip("\n"):
            text = text.split("\n", 1)[1]  # the line the byte bound cut
        return text or None

    def cancel(self, spec: JobSpec) -> None:
        options = client.V1DeleteOptions(propagation_policy="Background")
        try:
            self._call(
                f"delete job {spec.name} in namespace {self.namespace}",
                lambda: self._batch.delete_namespaced_job(
                    spec.name, self.namespace, body=options, _request_timeout=self._timeout
                ),
            )
        except ExecutorError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ApiException) and cause.status == 404):
                raise


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _created(pod: Any) -> tuple[datetime, datetime, datetime]:
    """Order of creation: ``creationTimestamp``, then (it has second resolution) the Pod's
    start and its container's finish; a name says nothing of order."""
    meta, status = pod.metadata, pod.status
    terminated = _terminated(pod)
    return (
        (meta.creation_timestamp if meta else None) or _EPOCH,
        (status.start_time if status else None) or _EPOCH,
        getattr(terminated, "finished_at", None) or _EPOCH,
    )


def _terminal(job: Any) -> Any | None:
    """The Job's ``Complete`` or ``Failed`` condition when true, else None."""
    for condition in (job.status.conditions if job.status else None) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition
    return None


def _terminated(pod: Any | None) -> Any | None:
    statuses = (pod.status.container_statuses if pod and pod.status else None) or []
    for status in statuses:
        if status.state is not None and status.state.terminated is not None:
            return status.state.terminated
    return None
