"""A rendering's deadline, and a stopping service's rendering in flight: the worker
process is killed, real processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.errors import RenderError, ReportUnrenderable
from service.monitoring.rendering import LatestHtml, RenderJob, RenderWorker, _stop
from tests.unit.service.test_evaluation import T0
from tests.unit.service.test_rendering import reported

__all__ = ["reported"]  # a fixture


def job(marker: Path, title: str = "report 7") -> RenderJob:
    # The task below reads its marker file from the profile field.
    return RenderJob(title, str(marker).encode(), b"", {}, {}, {})


def hang(job: RenderJob) -> bytes:
    """Runs in the worker: says it started (its pid in the marker file), then hangs."""
    Path(job.profile.decode()).write_text(str(os.getpid()))
    time.sleep(600)
    return b""


def hang_any(job: RenderJob) -> bytes:
    """``hang`` for any job: the marker file's path is in the environment."""
    return hang(RenderJob(job.title, os.environ["MARKER"].encode(), b"", {}, {}, {}))


def gated(job: RenderJob) -> bytes:
    """Runs in the worker: says it started, then waits for its gate (the marker path
    with ``.go``) to open before it returns its title."""
    marker = Path(job.profile.decode())
    marker.write_text(str(os.getpid()))
    for _ in range(6000):
        if marker.with_suffix(".go").exists():
            return job.title.encode()
        time.sleep(0.05)
    return b"gate never opened"


def quick(job: RenderJob) -> bytes:
    return job.title.encode()


def started(marker: Path) -> int:
    """The pid of the worker running ``hang``, once it wrote it (at most a minute)."""
    for _ in range(600):
        if marker.exists() and marker.read_text():
            return int(marker.read_text())
        time.sleep(0.1)
    raise AssertionError("the rendering never started")


def alive(pid: int) -> bool:
    # A killed child not yet reaped by its pool is a zombie: gone all the same. It may
    # be reaped while its state is read, which raises one of these.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def gone(pid: int) -> bool:
    for _ in range(300):
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_a_rendering_past_its_deadline_is_killed_and_the_report_named(tmp_path: Path) -> None:
    worker = RenderWorker(deadline=5.0, task=quick)
    try:
        # Warmed up first: the deadline then counts the hanging task alone, not the
        # worker's start and its import of this module.
        assert worker.render(job(tmp_path / "unused", "report 6")) == b"report 6"
        pid = worker._pid
        assert pid is not None and alive(pid)
        worker._task = hang
        with pytest.raises(ReportUnrenderable, match=r"report 7 cannot be rendered within 5 s"):
            worker.render(job(tmp_path / "pid"))
        assert gone(pid)
        # The next rendering gets a new worker.
        worker._task = quick
        assert worker.render(job(tmp_path / "unused", "report 8")) == b"report 8"
    finally:
        worker.close()


def test_a_rendering_waiting_for_its_turn_is_not_timed_by_the_wait(tmp_path: Path) -> None:
    # One worker process renders one report at a time. B is asked for while A renders,
    # and waits 0.6 of the deadline for its turn, then itself renders for 0.6: each
    # within the deadline, both together past it. Timed from its request, B was
    # called unrenderable and A's worker was killed under it.
    deadline = 5.0
    worker = RenderWorker(deadline=deadline, task=gated)
    a, b, warm = tmp_path / "a", tmp_path / "b", tmp_path / "warm"
    warm.with_suffix(".go").touch()
    results: dict[str, bytes | Exception] = {}

    def render(marker: Path) -> None:
        try:
            results[marker.name] = worker.render(job(marker, marker.name))
        except Exception as exc:  # recorded for the assertion
            results[marker.name] = exc

    try:
        assert worker.render(job(warm, "warm")) == b"warm"  # the worker's start is not timed
        threads = [threading.Thread(target=render, args=(m,)) for m in (a, b)]
        threads[0].start()
        started(a)
        threads[1].start()
        time.sleep(0.6 * deadline)
        a.with_suffix(".go").touch()
        started(b)
        time.sleep(0.6 * deadline)
        b.with_suffix(".go").touch()
        for thread in threads:
            thread.join(timeout=60)
        assert results == {"a": b"a", "b": b"b"}
    finally:
        worker.close()


def test_closing_kills_a_rendering_in_flight_and_refuses_new_ones(tmp_path: Path) -> None:
    worker = RenderWorker(deadline=3600.0, task=hang)
    outcome: list[BaseException] = []

    def render() -> None:
        try:
            worker.render(job(tmp_path / "pid"))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=render)
    thread.start()
    pid = started(tmp_path / "pid")
    worker.close()
    thread.join(timeout=60)  # without the kill it would wait out the hour-long job
    assert not thread.is_alive()
    assert gone(pid)
    (error,) = outcome
    assert isinstance(error, RenderError) and "the service is stopping" in str(error)
    with pytest.raises(RenderError, match="closed"):
        worker.render(job(tmp_path / "unused"))


def test_a_tick_stopped_by_the_closing_service_ends_quietly(
    reported: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKER", str(tmp_path / "pid"))  # the spawned worker inherits it
    html = LatestHtml(reported, clock=lambda: T0)
    html._worker._task = hang_any
    ticked: list[object] = []
    thread = threading.Thread(target=lambda: ticked.append(html.tick()))
    thread.start()
    pid = started(tmp_path / "pid")
    html.close()
    thread.join(timeout=60)
    assert not thread.is_alive() and gone(pid)
    assert ticked == [[]]  # no error for the scheduler to report: nothing went wrong


def test_a_pid_that_is_not_our_child_is_never_killed() -> None:
    # A worker that died on its own was reaped by its pool, and its pid may since be
    # another process's: stopping the pool must not kill that one.
    started_by_sh = subprocess.run(
        ["sh", "-c", "sleep 120 >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(started_by_sh.stdout)  # sh's child, not ours
    try:
        _stop(ThreadPoolExecutor(1), pid)
        # A kill would take effect within milliseconds; a slow machine can only make
        # this pass, never fail, by chance.
        for _ in range(20):
            assert alive(pid)
            time.sleep(0.1)
    finally:
        os.kill(pid, signal.SIGKILL)
