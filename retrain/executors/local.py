"""The ``local`` executor: each job is a subprocess on this machine.

One directory per job under ``workdir`` (named after the job), holding the
job's description, its log, its result file and the files of the wrapper
(:mod:`retrain.executors.wrapper`) that runs it: the wrapper lives in its own
session, so a job survives the service, and it records the exit status, so a
restarted service (a new executor instance) can still observe the job, running
or finished, without starting it again. A job is ``MISSING`` only while it has
no directory (never launched, or the directory was removed since); a directory
whose wrapper never began is ``UNSTARTED``, to be launched again.

The job's environment is built by allow-list (:func:`~retrain.executors.base.base_env`):
the environment contract of the job, a small base taken from the service
(``PATH``, ``HOME``, ``LANG``/``LC_*``, ``TZ``, ``TMPDIR``, the interpreter's
``PYTHON*`` settings) and the names the model's ``retrain.pass_env`` lists.
Nothing else of the service's environment (its ``DRIFTWATCH_*`` settings,
database password, alert keys, cloud credentials) reaches a trainer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrain.errors import ExecutorError
from retrain.executors.base import (
    LAST_LINE_BYTES,
    RESULT_LIMIT_BYTES,
    JobPhase,
    JobSpec,
    JobStatus,
    base_env,
    last_line,
    result_status,
    with_message,
)
from retrain.executors.wrapper import CANCELLED, EXIT, JOB, LOCK, LOG, STARTED, write_atomic

RESULT = "result.json"
WRAPPER_LOG = "wrapper.log"
TAIL_LINES = 50
TAIL_BYTES = 4096


def log_tail(path: Path, lines: int = TAIL_LINES, limit: int = TAIL_BYTES) -> str | None:
    """The last ``lines`` lines of a log, at most ``limit`` bytes; None without a log."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - limit))
            data = log.read()
    except FileNotFoundError:
        return None
    text = data.decode("utf-8", errors="replace")
    if size > limit and "\n" in text:
        text = text.split("\n", 1)[1]  # drop the line the byte limit cut
    return "\n".join(text.splitlines()[-lines:])


def wrapper_alive(job_dir: Path) -> bool:
    """Whether a wrapper holds the job's lock (a shared probe never blocks a wrapper for long)."""
    try:
        with open(job_dir / LOCK, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False
    except OSError as exc:
        message = f"cannot probe the job lock in {job_dir}: {exc}"
        raise ExecutorError(message, retriable=True) from exc


def last_log_line(path: Path, limit: int = LAST_LINE_BYTES) -> str | None:
    """The log's last non-empty line, read apart from the tail (whose 4 KB would cut a
    long message away); a line longer than ``limit`` bytes keeps its end, marked cut."""
    try:
        with open(path, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - limit))
            data = log.read()
    except FileNotFoundError:
        return None
    text = data.decode("utf-8", errors="replace")
    line = last_line(text)
    if line is not None and size > limit and "\n" not in text.rstrip():
        line = "…" + line
    return line


class LocalExecutor:
    """Runs jobs as local subprocesses (see the module docstring)."""

    def __init__(self, workdir: str | os.PathLike[str], command: Sequence[str]) -> None:
        if not command:
            raise ExecutorError("retrain.command: empty command", retriable=False)
        # Absolute: the wrapper and the job must find the directory whatever their cwd.
        self.workdir = Path(workdir).resolve()
        # A bare "python" means the service's own interpreter, which has the reference
        # trainer installed; PATH's python may be another one.
        self.command = [sys.executable if command[0] == "python" else command[0], *command[1:]]
        self._wrappers: dict[str, subprocess.Popen[bytes]] = {}

    def job_dir(self, spec: JobSpec) -> Path:
        return self.workdir / spec.name

    def launch(self, spec: JobSpec) -> bool:
        job_dir = self.job_dir(spec)
        own = self._wrappers.get(spec.name)
        if own is not None and own.poll() is None:
            return True
        self._check_same_job(spec, job_dir)
        if self._begun(job_dir):
            return True  # adopted: a wrapper ran or runs it, or it was cancelled
        try:
            job_dir.mkdir(parents=True, exist_ok=True)
            job = {"name": spec.name, "spec": spec.fingerprint(), "command": self.command}
            write_atomic(job_dir / JOB, {**job, "timeout_seconds": spec.timeout.total_seconds()})
            with open(job_dir / WRAPPER_LOG, "ab") as wrapper_log:
                self._wrappers[spec.name] = subprocess.Popen(
                    [sys.executable, "-m", "retrain.executors.wrapper", str(job_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=wrapper_log,
                    stderr=subprocess.STDOUT,
                    env=self._env(spec, job_dir),
                    start_new_session=True,
                )
        except OSError as exc:
            raise ExecutorError(f"cannot start job {spec.name}: {exc}", retriable=True) from exc
        return True

    def _check_same_job(self, spec: JobSpec, job_dir: Path) -> None:
        """Refuse to adopt a directory left by another job of the same name (e.g. a run id
        reused after the database was recreated): its result is not this job's."""
        try:
            stored = json.loads((job_dir / JOB).read_text(encoding="utf-8")).get("spec")
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise ExecutorError(f"cannot read {job_dir / JOB}: {exc}", retriable=True) from exc
        if stored != spec.fingerprint():
            raise ExecutorError(
                f"{job_dir} holds another job named {spec.name} (different data, output or "
                "environment); remove it or use another retrain.workdir",
                retriable=False,
            )

    def _begun(self, job_dir: Path) -> bool:
        names = (STARTED, EXIT, CANCELLED)
        return any((job_dir / n).exists() for n in names) or (
            job_dir.exists() and wrapper_alive(job_dir)
        )

    def _env(self, spec: JobSpec, job_dir: Path) -> dict[str, str]:
        env = base_env(os.environ, spec.pass_env)
        env.update(spec.contract_env(str(job_dir / RESULT)))
        env["PYTHONUNBUFFERED"] = "1"  # the log tail should hold the last words of a crash
        return env

    def observe(self, spec: JobSpec) -> JobStatus:
        job_dir = self.job_dir(spec)
        if not job_dir.exists():
            return JobStatus(JobPhase.MISSING)
        ended = self._ended(spec, job_dir)
        if ended is not None:
            return ended
        if wrapper_alive(job_dir):
            return JobStatus(JobPhase.RUNNING, log_tail=log_tail(job_dir / LOG))
        # The wrapper writes exit.json before its lock goes: read it again after the probe.
        ended = self._ended(spec, job_dir)
        if ended is not None:
            return ended
        return self._without_wrapper(spec, job_dir)

    def _without_wrapper(self, spec: JobSpec, job_dir: Path) -> JobStatus:
        if (job_dir / CANCELLED).exists():
            return JobStatus(JobPhase.FAILED, "cancelled", log_tail(job_dir / LOG))
        if (job_dir / STARTED).exists():
            reason = "the job's wrapper died without recording an exit status"
            return JobStatus(JobPhase.FAILED, reason, log_tail(job_dir / LOG))
        own = self._wrappers.get(spec.name)
        if own is not None:
            code = own.poll()
            if code is None:
                return JobStatus(JobPhase.RUNNING)  # spawned, not yet holding its lock
            reason = f"the job's wrapper exited with code {code} before starting the job"
            return JobStatus(JobPhase.FAILED, reason, log_tail(job_dir / WRAPPER_LOG))
        # The launcher died before spawning the wrapper, or the wrapper died (or has yet to
        # take its lock) before it began: the lock and ``started`` make a second wrapper
        # run the job once, so launching again is safe even after the launch was recorded.
        return JobStatus(JobPhase.UNSTARTED)

    def _ended(self, spec: JobSpec, job_dir: Path) -> JobStatus | None:
        try:
            outcome: dict[str, Any] = json.loads((job_dir / EXIT).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ExecutorError(f"cannot read {job_dir / EXIT}: {exc}", retriable=True) from exc
        own = self._wrappers.pop(spec.name, None)
        if own is not None:
            own.wait()  # reap it; it has written its last file
        tail = log_tail(job_dir / LOG)
        code = outcome.get("returncode")
        if "error" in outcome:
            return JobStatus(JobPhase.FAILED, f"cannot start the command: {outcome['error']}", tail)
        if outcome.get("cancelled"):
            return JobStatus(JobPhase.FAILED, "cancelled", tail)
        if outcome.get("timed_out"):
            reason = f"timed out after {spec.timeout.total_seconds():g} s"
            return JobStatus(JobPhase.FAILED, reason, tail)
        if isinstance(code, int) and code < 0:
            return JobStatus(JobPhase.FAILED, f"killed by {signal.Signals(-code).name}", tail)
        if code != 0:
            # The job's own last line says why; it is read from the log, not the tail.
            reason = with_message(f"exit code {code}", last_log_line(job_dir / LOG))
            return JobStatus(JobPhase.FAILED, reason, tail)
        data, size = self._result(job_dir)
        return result_status(data, tail, size)

    def _result(self, job_dir: Path) -> tuple[bytes | None, int]:
        """The result's first bytes, one past the limit (the trainer's file is untrusted: it
        may be gigabytes), and its size."""
        try:
            with open(job_dir / RESULT, "rb") as result:
                return result.read(RESULT_LIMIT_BYTES + 1), os.fstat(result.fileno()).st_size
        except FileNotFoundError:
            return None, 0
        except OSError as exc:
            raise ExecutorError(f"cannot read {job_dir / RESULT}: {exc}", retriable=True) from exc

    def close(self) -> None:
        """Nothing to release: each job's wrapper outlives this process by design."""

    def cancel(self, spec: JobSpec) -> None:
        job_dir = self.job_dir(spec)
        try:
            job_dir.mkdir(parents=True, exist_ok=True)
            (job_dir / CANCELLED).touch()  # the wrapper polls for it; a later launch sees it
        except OSError as exc:
            raise ExecutorError(f"cannot cancel {spec.name}: {exc}", retriable=True) from exc
        with contextlib.suppress(KeyError):
            if self._wrappers[spec.name].poll() is not None:
                del self._wrappers[spec.name]
