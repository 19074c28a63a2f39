"""Evidently HTML for stored drift reports: on demand, and the latest per model.

Rendering takes seconds of CPU (Evidently re-tests every column from rows and
inlines its JavaScript), so the service renders in a separate process: the
ingestion loop and the evaluator never wait for it, and do not share its GIL.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from db.profiles import ProfileRepository
from db.reports import DriftReportRepository, ReportDetail
from db.session import transaction
from service.errors import RenderBusy, RenderError, ReportUnrenderable

log = logging.getLogger(__name__)
# The longest one report's rendering may take (evaluation.render_timeout's default).
DEFAULT_DEADLINE = 300.0


class ReportNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class RenderJob:
    """Everything one rendering needs, as plain picklable values."""

    title: str
    profile: bytes
    sample: bytes
    kinds: dict[str, str]
    methods: dict[str, str]
    thresholds: dict[str, float]


def render(job: RenderJob) -> str:
    """The HTML of one report (runs wherever it is called, in or out of process)."""
    import pandas as pd

    from drift.html import reference_frame, render_drift_html
    from drift.profile import ReferenceProfile
    from drift.sketch import decode_sample

    profile = ReferenceProfile.from_bytes(job.profile)
    sample = decode_sample(job.sample)
    current = pd.DataFrame({name: sample[name] for name in job.kinds})
    return render_drift_html(
        reference_frame(profile),
        current,
        kinds=job.kinds,
        methods=job.methods,
        thresholds=job.thresholds,
        title=job.title,
    )


def render_compressed(job: RenderJob) -> bytes:
    from drift.html import compress_html

    return compress_html(render(job))


def job_for(sessions: sessionmaker[Session], report_id: int) -> RenderJob:
    """Read a stored report and its profile; raise ReportNotFound with the reason."""
    with sessions() as session:
        detail = DriftReportRepository(session).get(report_id)
        if detail is None:
            raise ReportNotFound(f"no drift report with id {report_id}")
        stored = ProfileRepository(session).by_id(detail.profile_id)
    if stored is None:
        raise ReportNotFound(f"report {report_id}: its reference profile is gone")
    if not detail.sample:
        raise ReportNotFound(
            f"report {report_id}: the window kept no row sample (models.*.drift.window_sample is 0)"
        )
    return RenderJob(
        title=_title(detail),
        profile=stored.features.to_bytes(),
        sample=detail.sample,
        kinds={f.feature: f.kind for f in detail.features},
        methods={f.feature: f.method for f in detail.features if f.method},
        thresholds={f.feature: f.threshold for f in detail.features if f.threshold is not None},
    )


def _title(detail: ReportDetail) -> str:
    s = detail.summary
    return (
        f"driftwatch report {s.id}: {s.model} {s.model_version}, window "
        f"{s.window_start:%Y-%m-%d %H:%M:%S}Z, profile v{s.profile_version}"
    )


def _worker_pool() -> Executor:
    # spawn, not fork: the parent runs Kafka client threads.
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


class RenderWorker:
    """One rendering process, started when first needed; a dead one is replaced.

    A rendering may take at most ``deadline`` seconds: past it, or when the worker
    is closed (the service stopping), the worker process is killed. Renderings take
    turns: the one process runs one at a time, and a deadline that also counted the
    wait for another's turn would blame, and kill the worker of, a rendering that
    never ran. A turn not come within ``deadline`` (another rendering stuck past
    its own) is :class:`RenderBusy`. Python 3.11's
    ProcessPoolExecutor cannot stop a running job, so the worker's process id is
    asked for when it starts, through the pool itself.
    """

    def __init__(
        self,
        pool_factory: Callable[[], Executor] = _worker_pool,
        deadline: float = DEFAULT_DEADLINE,
        task: Callable[[RenderJob], bytes] = render_compressed,
    ) -> None:
        self._pool_factory = pool_factory
        self._deadline = deadline
        self._task = task
        self._lock = threading.Lock()  # close() comes from another thread than render()
        self._turn = threading.Lock()  # held by the rendering under way
        self._pool: Executor | None = None
        self._pid: int | None = None
        self._closed = False

    def render(self, job: RenderJob) -> bytes:
        """The compressed HTML of ``job``; a dead worker (crash, OOM kill) is replaced once.

        A pool whose worker died refuses every later job, so it is dropped: the
        retry and any later job run in a new one. A job that kills its worker
        twice fails alone. Whatever the job itself raises in the worker (a stored
        sample that does not decode, data Evidently refuses), and a job that runs
        past the deadline, is :class:`ReportUnrenderable`.
        """
        if not self._turn.acquire(timeout=self._deadline):
            raise RenderBusy(f"{job.title}: another report is still being rendered; retry later")
        try:
            return self._render(job)
        finally:
            self._turn.release()

    def _render(self, job: RenderJob) -> bytes:
        for attempt in range(2):
            try:
                future = self._executor().submit(self._task, job)
                error = future.exception(timeout=self._deadline)
            except BrokenProcessPool as exc:  # a pool found broken at submit
                error = exc
            except TimeoutError:
                self._discard(kill=True)
                raise ReportUnrenderable(
                    f"{job.title} cannot be rendered within {self._deadline:g} s "
                    "(evaluation.render_timeout); its worker was stopped"
                ) from None
            if error is None:
                html: bytes = future.result()
                return html
            if not isinstance(error, BrokenProcessPool):  # raised by the job in the worker
                raise ReportUnrenderable(
                    f"{job.title} cannot be rendered: {type(error).__name__}: {error}"
                ) from error
            self._discard()
            if self._closed:
                raise RenderError(f"{job.title}: stopped, the service is stopping") from None
            if attempt:
                raise RenderError(f"{job.title}: the rendering worker died twice") from error
            log.warning("the rendering worker died (%s); starting a new one", error)
        raise AssertionError("unreachable")

    def _discard(self, kill: bool = False) -> None:
        with self._lock:
            pool, pid, self._pool, self._pid = self._pool, self._pid, None, None
        if pool is not None:
            _stop(pool, pid if kill else None)

    def _executor(self) -> Executor:
        with self._lock:
            if self._closed:
                raise RenderError("the renderer is closed: the service is stopping")
            if self._pool is not None:
                return self._pool
        # Started outside the lock, which close() must never wait for.
        pool = self._pool_factory()
        try:
            pid = pool.submit(os.getpid).result(timeout=self._deadline)
        except BaseException as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            if isinstance(exc, TimeoutError):
                raise RenderError(
                    f"the rendering worker did not start within {self._deadline:g} s"
                ) from None
            raise
        with self._lock:
            if self._pool is None and not self._closed:
                self._pool, self._pid = pool, pid
                return pool
            current, closed = self._pool, self._closed
        # Another request started one meanwhile, or the service is stopping.
        _stop(pool, pid)
        if closed or current is None:
            raise RenderError("the renderer is closed: the service is stopping")
        return current

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop: a rendering in flight is killed, and no new one starts."""
        with self._lock:
            self._closed = True
        self._discard(kill=True)


def _stop(pool: Executor, pid: int | None) -> None:
    """Shut ``pool`` down, killing its worker ``pid`` first when given."""
    if pid is not None and _our_child(pid):
        # The pool notices its worker gone: a job waiting on it fails, and the pool's
        # thread ends, so no exit waits for the job.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pool.shutdown(wait=False, cancel_futures=True)


def _our_child(pid: int) -> bool:
    """Whether ``pid`` is still a child of this process: a worker that died on its own
    was reaped by its pool, and its pid may since belong to another process."""
    if not os.path.isdir("/proc/self"):
        return True  # not Linux: the pid is trusted as it is
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except OSError:  # gone
        return False


class LatestHtml:
    """Keeps the stored HTML of each model's newest report current.

    One worker process renders one report at a time; a tick waits for it in
    the scheduler's own thread, never in the ingestion loop or the evaluator, and
    at most ``deadline`` seconds (then the report counts as unrenderable). Closing
    kills a rendering in flight: a stopping service does not wait for it.
    A report that fails to render holds back no other model's: one that is
    :class:`ReportUnrenderable` is named once and left until a newer report of its model
    replaces it; a worker that died is retried next tick, which then fails (the
    scheduler counts it) once the other models are done.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], float] = time.time,
        pool_factory: Callable[[], Executor] = _worker_pool,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._worker = RenderWorker(pool_factory, deadline)
        # Each model's newest report that failed for good (one entry per configured model).
        self._unrenderable: dict[str, int] = {}

    def tick(self) -> list[str]:
        """Render and store what is missing; return the models whose HTML changed."""
        with self._sessions() as session:
            repo = DriftReportRepository(session)
            latest, rendered = repo.latest_ids(), repo.rendered()
        changed: list[str] = []
        retry: RenderError | None = None
        for model, report_id in sorted(latest.items()):
            if report_id in (rendered.get(model), self._unrenderable.get(model)):
                continue
            try:
                job = job_for(self._sessions, report_id)
            except ReportNotFound as exc:
                log.info("latest report of %s not rendered: %s", model, exc)
                continue
            try:
                html = self._worker.render(job)
            except ReportUnrenderable as exc:
                self._unrenderable[model] = report_id
                log.error("%s; left until a newer report of %s (other models go on)", exc, model)
                continue
            except RenderError as exc:
                if self._worker.closed:  # the service is stopping: not a failure
                    log.info("rendering stopped with the service")
                    return changed
                retry = retry or exc
                continue
            with transaction(self._sessions) as session:
                DriftReportRepository(session).store_html(
                    model, report_id, html, datetime.fromtimestamp(self._clock(), UTC)
                )
            changed.append(model)
        if retry is not None:
            raise retry
        return changed

    def close(self) -> None:
        self._worker.close()


class OnDemandHtml:
    """Any stored report's HTML for the API: the stored page of a model's newest report,
    else rendered now in a worker process of its own (seconds of CPU that must not
    hold the service's GIL). At most ``capacity`` requests render or wait at once; more
    are refused with RenderBusy rather than queued without bound."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        capacity: int = 2,
        pool_factory: Callable[[], Executor] = _worker_pool,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self._sessions = sessions
        self._slots = threading.BoundedSemaphore(capacity)
        self._worker = RenderWorker(pool_factory, deadline)

    def html(self, report_id: int) -> str:
        from db.models import DriftReportRow
        from drift.html import decompress_html

        with self._sessions() as session:
            row = session.get(DriftReportRow, report_id)
            stored = None if row is None else DriftReportRepository(session).html(row.model)
        if stored is not None and stored[0] == report_id:
            return decompress_html(stored[1])
        job = job_for(self._sessions, report_id)
        if not self._slots.acquire(blocking=False):
            raise RenderBusy("other reports are being rendered; retry in a few seconds")
        try:
            return decompress_html(self._worker.render(job))
        finally:
            self._slots.release()

    def close(self) -> None:
        self._worker.close()
