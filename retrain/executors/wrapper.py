"""The local executor's job wrapper: ``python -m retrain.executors.wrapper JOB_DIR``.

It runs the job's command once, enforces its timeout, and records how it ended
in ``exit.json``, so the service can learn the outcome even if it was not
running when the job finished. It holds an exclusive ``flock`` on ``lock``
while it lives: a held lock means the job is alive (no pid that could be
reused), and a second wrapper for the same directory waits for the first,
sees ``started`` and leaves, so a job never runs twice. Cancelling is a
``cancelled`` file the wrapper polls for, which needs no signal to a pid.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

JOB, LOCK, STARTED, CANCELLED, EXIT, LOG = (
    "job.json",
    "lock",
    "started",
    "cancelled",
    "exit.json",
    "log",
)
_POLL_SECONDS = 0.2
_GRACE_SECONDS = 5.0


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that a reader sees all of it or nothing (rename is atomic)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Stop the command and everything it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _supervise(job_dir: Path, child: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            code = child.wait(_POLL_SECONDS)
            return {"returncode": code}
        except subprocess.TimeoutExpired:
            pass
        if (job_dir / CANCELLED).exists():
            _stop(child)
            return {"returncode": child.returncode, "cancelled": True}
        if time.monotonic() >= deadline:
            _stop(child)
            return {"returncode": child.returncode, "timed_out": True}


def run(job_dir: Path) -> int:
    lock = open(job_dir / LOCK, "a")  # noqa: SIM115 - held for the life of the process
    fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another wrapper runs this job
    if (job_dir / STARTED).exists() or (job_dir / EXIT).exists():
        return 0
    if (job_dir / CANCELLED).exists():
        write_atomic(job_dir / EXIT, {"returncode": None, "cancelled": True})
        return 0
    job = json.loads((job_dir / JOB).read_text(encoding="utf-8"))
    write_atomic(job_dir / STARTED, {"pid": os.getpid()})
    with open(job_dir / LOG, "ab") as log:
        try:
            child = subprocess.Popen(
                job["command"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        except OSError as exc:
            write_atomic(job_dir / EXIT, {"returncode": None, "error": str(exc)})
            return 0
        # A stray SIGTERM to the wrapper (e.g. a shutdown) stops the job instead of orphaning it.
        signal.signal(signal.SIGTERM, lambda *_: (job_dir / CANCELLED).touch())
        outcome = _supervise(job_dir, child, float(job["timeout_seconds"]))
    write_atomic(job_dir / EXIT, outcome)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
