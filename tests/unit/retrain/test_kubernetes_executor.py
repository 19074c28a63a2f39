"""The kubernetes executor, through the official client over real HTTP, against the
emulator of tests/harness/k8s (a kubelet runs each Job's command locally)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from retrain.errors import ExecutorError
from retrain.executors import JobPhase, JobSpec, JobStatus, Mode, kubernetes
from retrain.executors.base import LAST_LINE_BYTES, last_bytes
from retrain.executors.kubernetes import KubernetesExecutor, KubernetesSettings, render
from retrain.executors.kubernetes_watch import JobCache
from tests.harness.k8s.cluster import NAMESPACE, api_client, cluster, python_job, until
from tests.harness.k8s.kubelet import Kubelet
from tests.harness.k8s.server import Emulator, Fault

WRITE_RESULT = (
    "import json, os; "
    "open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w').write(json.dumps("
    "{'run': os.environ['DRIFTWATCH_RUN_ID'], 'extra': os.environ['EXTRA']}))"
)


def spec(run_id: int = 7, mode: Mode = Mode.TRAIN, seconds: float = 600) -> JobSpec:
    return JobSpec(
        run_id, "fraud", mode, "/data/x.parquet", "/models/fraud/", timedelta(seconds=seconds),
        {"DRIFTWATCH_TASK": "classification"},
    )  # fmt: skip


# Every executor a test makes is closed after it: a Job watch left running would retry
# against the stopped emulator and log into the tests after it.
_made: list[KubernetesExecutor] = []


@pytest.fixture(autouse=True)
def close_executors() -> Iterator[None]:
    yield
    while _made:
        _made.pop().close()


def executor(emulator: Emulator, template: dict[str, Any], **kw: Any) -> KubernetesExecutor:
    settings = KubernetesSettings(NAMESPACE, template, request_timeout=2.0, **kw)
    made = KubernetesExecutor(api_client(emulator.url), settings, sleep=lambda _: None)
    _made.append(made)
    return made


def finished(ex: KubernetesExecutor, s: JobSpec) -> JobStatus:
    def check() -> JobStatus | None:
        status = ex.observe(s)
        return status if status.phase not in (JobPhase.RUNNING, JobPhase.MISSING) else None

    result: JobStatus = until(check)
    return result


def failed(emulator: Emulator, script: str) -> tuple[JobStatus, str]:
    """Run ``script`` as a Job to its end, which must be a failure with a reason."""
    ex = executor(emulator, python_job(script))
    ex.launch(spec())
    status = finished(ex, spec())
    assert status.phase is JobPhase.FAILED and status.reason is not None
    return status, status.reason


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[tuple[Emulator, Kubelet]]:
    with cluster(tmp_path) as (emulator, node):
        assert node is not None
        yield emulator, node


def test_render_carries_the_template_and_sets_the_contract() -> None:
    job = render(spec(), KubernetesSettings(NAMESPACE, python_job("pass")))
    assert job["metadata"]["name"] == "driftwatch-fraud-7-train"
    assert job["metadata"]["labels"] == {
        "team": "fraud",
        "app.kubernetes.io/managed-by": "driftwatch",
        "driftwatch/model": "fraud",
        "driftwatch/run": "7",
        "driftwatch/mode": "train",
    }
    body = job["spec"]
    assert (body["backoffLimit"], body["activeDeadlineSeconds"]) == (0, 600)
    assert body["ttlSecondsAfterFinished"] == 86400
    pod = body["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"accelerator": "a100"}
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DRIFTWATCH_RESULT_PATH"] == "/dev/termination-log"
    assert env["DRIFTWATCH_MODE"] == "train" and env["EXTRA"] == "kept"
    assert env["DRIFTWATCH_TASK"] == "classification"


def test_template_overrides_the_defaults() -> None:
    template = python_job("pass", terminationMessagePath="/tmp/result")
    template["spec"]["backoffLimit"] = 2
    job = render(spec(), KubernetesSettings(NAMESPACE, template))
    assert job["spec"]["backoffLimit"] == 2
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DRIFTWATCH_RESULT_PATH"] == "/tmp/result"


def test_one_run_one_job_with_the_result_from_the_termination_message(
    emu: tuple[Emulator, Kubelet],
) -> None:
    emulator, node = emu
    ex = executor(emulator, python_job(WRITE_RESULT))
    s = spec()
    assert ex.launch(s) is True
    assert ex.launch(s) is True  # a duplicate trigger adopts
    status = finished(ex, s)
    assert status.phase is JobPhase.SUCCEEDED, status
    assert status.result == {"run": "7", "extra": "kept"}
    assert emulator.count("create", "jobs", 201) == 1 and node.pods_started == 1
    stored = emulator.store.get("jobs", NAMESPACE, s.name)
    limits = stored["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    ex.close()


def test_a_retried_create_that_had_succeeded_is_adopted(emu: tuple[Emulator, Kubelet]) -> None:
    emulator, node = emu
    emulator.inject(Fault("create", "jobs", 503, after=True))  # created, answered 503
    ex = executor(emulator, python_job(WRITE_RESULT))
    ex.launch(spec())
    assert emulator.count("create", "jobs", 409) == 1
    assert finished(ex, spec()).phase is JobPhase.SUCCEEDED
    assert len(emulator.store.list("jobs", NAMESPACE, None)[0]) == 1 and node.pods_started == 1
    ex.close()


def test_a_job_of_another_run_with_the_same_name_is_not_adopted(
    emu: tuple[Emulator, Kubelet],
) -> None:
    emulator, _ = emu
    ex = executor(emulator, python_job(WRITE_RESULT))
    job = render(spec(), ex.settings)
    job["metadata"]["labels"]["driftwatch/run"] = "99"
    emulator.store.create("jobs", NAMESPACE, job)
    assert ex.launch(spec()) is False  # refused: the run records no launch
    status = ex.observe(spec())
    assert status.phase is JobPhase.FAILED
    assert "belongs to another run" in (status.reason or "")
    ex.close()


def test_a_failed_job_fails_with_its_reason_and_log_tail(emu: tuple[Emulator, Kubelet]) -> None:
    emulator, node = emu
    script = "import sys; print('loading'); print('no rows', file=sys.stderr); sys.exit(3)"
    template = python_job(script)
    template["spec"]["backoffLimit"] = 1
    ex = executor(emulator, template)
    ex.launch(spec())
    status = finished(ex, spec())
    assert status.phase is JobPhase.FAILED
    assert status.reason is not None and status.reason.startswith("BackoffLimitExceeded")
    assert "(exit code 3)" in status.reason
    assert status.log_tail is not None and "no rows" in status.log_tail
    assert node.pods_started == 2  # backoffLimit 1: one retry
    ex.close()


@pytest.mark.parametrize("size", [2048, 6000])  # 6000: longer than the 4096 kept of the log
def test_a_failed_job_keeps_its_long_message_shortened_in_the_middle(
    emu: tuple[Emulator, Kubelet], size: int
) -> None:
    emulator, _ = emu
    script = (
        "import sys\n"
        "print('loading rows')\n"
        f"body = ''.join(chr(ord('a') + i % 26) for i in range({size}))\n"
        "print('driftwatch-trainer: START ' + body + ' END', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    status, reason = failed(emulator, script)
    body = "".join(chr(ord("a") + i % 26) for i in range(size))
    message = f"driftwatch-trainer: START {body} END"
    assert reason.startswith("BackoffLimitExceeded")
    assert "(exit code 1): " in reason
    assert reason.endswith(f": {message[:240]} … {message[-240:]}")
    assert len(reason) < 600
    assert status.log_tail == f"loading rows\n{message}\n"[-4096:]


def test_a_last_line_after_megabytes_of_log_is_read_from_a_bounded_tail(
    emu: tuple[Emulator, Kubelet],
) -> None:
    """A log line has no length limit (a progress bar redrawn with a carriage return is
    one line): the tail is read a chunk at a time, only its last LAST_LINE_BYTES held, and
    the job's last line still gives the reason."""
    emulator, _ = emu
    size = 3 * LAST_LINE_BYTES
    script = (
        "import sys\n"
        f"sys.stderr.write('x' * {size} + '\\n')\n"
        "sys.stderr.write('no rows in the window\\n')\n"
        "sys.exit(1)\n"
    )
    status, reason = failed(emulator, script)
    assert reason.endswith("(exit code 1): no rows in the window")
    assert status.log_tail == "no rows in the window\n"


def test_a_log_tail_over_the_read_bound_is_left_and_the_job_judged_without_it(
    emu: tuple[Emulator, Kubelet], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    emulator, _ = emu
    monkeypatch.setattr(kubernetes, "LOG_READ_BYTES", 256 * 1024)
    script = "import sys; sys.stderr.write('y' * 1048576 + '\\nno rows\\n'); sys.exit(1)"
    with caplog.at_level(logging.WARNING, "retrain.executors.kubernetes"):
        status, reason = failed(emulator, script)
    assert reason.startswith("BackoffLimitExceeded")
    assert reason.endswith("(exit code 1)")
    assert status.log_tail is None
    assert "is over 262144 bytes or took over 2 s to read" in caplog.text


def test_a_job_past_its_deadline_fails_with_that_reason(emu: tuple[Emulator, Kubelet]) -> None:
    emulator, _ = emu
    ex = executor(emulator, python_job("import time; print('start', flush=True); time.sleep(60)"))
    s = spec(seconds=1)
    ex.launch(s)
    status = finished(ex, s)
    assert status.phase is JobPhase.FAILED
    assert (status.reason or "").startswith("DeadlineExceeded")
    ex.close()


def test_no_result_in_a_complete_job_fails_it(emu: tuple[Emulator, Kubelet]) -> None:
    emulator, _ = emu
    ex = executor(emulator, python_job("print('done')"))
    ex.launch(spec())
    status = finished(ex, spec())
    assert (status.phase, status.reason) == (JobPhase.FAILED, "no result written")
    assert status.log_tail == "done\n"
    ex.close()


def test_a_template_the_api_rejects_fails_naming_the_field(emu: tuple[Emulator, Kubelet]) -> None:
    emulator, _ = emu
    template = python_job("pass")
    template["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    ex = executor(emulator, template)
    assert ex.launch(spec()) is False
    status = ex.observe(spec())
    assert status.phase is JobPhase.FAILED
    assert "422" in (status.reason or "")
    assert "spec.template.spec.restartPolicy" in (status.reason or "")
    ex.close()


def test_forbidden_is_fatal_with_a_clear_message(tmp_path: Path) -> None:
    read_only = {"rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]}]}
    with cluster(tmp_path, role=read_only) as (emulator, _):
        ex = executor(emulator, python_job(WRITE_RESULT))
        ex.launch(spec())
        status = ex.observe(spec())
        assert status.phase is JobPhase.FAILED
        assert "403" in (status.reason or "") and "cannot create" in (status.reason or "")
        assert emulator.count("create", "jobs", 403) == 1  # fatal: not retried
        ex.close()


def test_injected_server_errors_are_retried(emu: tuple[Emulator, Kubelet]) -> None:
    emulator, _ = emu
    emulator.inject(Fault("create", "jobs", 500, count=2))
    ex = executor(emulator, python_job(WRITE_RESULT))
    ex.launch(spec())
    assert emulator.count("create", "jobs", 500) == 2
    assert finished(ex, spec()).phase is JobPhase.SUCCEEDED
    ex.close()


def test_errors_that_outlast_the_retries_are_retriable_and_keep_the_run(
    emu: tuple[Emulator, Kubelet],
) -> None:
    emulator, _ = emu
    emulator.inject(Fault("create", "jobs", 0, count=3, delay=2.5))  # the client times out
    ex = executor(emulator, python_job(WRITE_RESULT))
    with pytest.raises(ExecutorError) as caught:
        ex.launch(spec())
    assert caught.value.retriable
    assert ex.observe(spec()).phase is JobPhase.MISSING  # nothing created: launch again
    ex.launch(spec())
    assert finished(ex, spec()).phase is JobPhase.SUCCEEDED
    ex.close()


def test_a_410_during_the_watch_is_recovered(tmp_path: Path, emu: tuple[Emulator, Kubelet]) -> None:
    emulator, _ = emu
    go = tmp_path / "go"
    script = (
        "import json, os, pathlib, time\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.02)\n"
        "open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w').write(json.dumps({'ok': 1}))\n"
    )
    ex = executor(emulator, python_job(script), resync_seconds=3600)
    ex.launch(spec())
    until(lambda: ex.cache.synced and ex.cache.get(spec().name) is not None)
    assert ex.observe(spec()).phase is JobPhase.RUNNING
    # The watch ends and its resourceVersion expires; the Job completes before the watcher
    # is back, so only a re-list can tell it.
    emulator.watches_open.clear()
    emulator.store.compact()
    go.touch()
    until(
        lambda: (
            emulator.store.get("jobs", NAMESPACE, spec().name).get("status", {}).get("succeeded")
        )
    )
    emulator.watches_open.set()
    status = finished(ex, spec())
    assert status.result == {"ok": 1}
    assert ex.cache.relists >= 2
    ex.close()


def test_a_job_collected_before_its_result_was_read_is_missing_again(
    emu: tuple[Emulator, Kubelet],
) -> None:
    """The executor cannot tell a deleted Job from one never created, and no longer
    pretends to from memory: the run's launch record decides (test_run_launches.py)."""
    emulator, _ = emu
    ex = executor(emulator, python_job("import time; time.sleep(60)"))
    assert ex.launch(spec()) is True
    assert ex.observe(spec()).phase is JobPhase.RUNNING
    emulator.store.delete("jobs", NAMESPACE, spec().name)
    until(lambda: ex.observe(spec()).phase is JobPhase.MISSING)
    assert executor(emulator, python_job("pass")).observe(spec()).phase is JobPhase.MISSING
    ex.close()


def test_cancel_deletes_the_job_and_its_pods_and_is_idempotent(
    emu: tuple[Emulator, Kubelet],
) -> None:
    emulator, _ = emu
    ex = executor(emulator, python_job("import time; time.sleep(60)"))
    ex.launch(spec())
    until(lambda: emulator.store.list("pods", NAMESPACE, f"job-name={spec().name}")[0])
    ex.cancel(spec())
    ex.cancel(spec())
    assert emulator.store.list("jobs", NAMESPACE, None)[0] == []
    assert emulator.store.list("pods", NAMESPACE, None)[0] == []
    ex.close()


def test_a_result_over_the_limit_is_truncated_by_the_kubelet_and_refused(
    emu: tuple[Emulator, Kubelet],
) -> None:
    emulator, _ = emu
    big = json.dumps({"pad": "x" * 5000})
    script = f"import os; open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w').write({big!r})"
    ex = executor(emulator, python_job(script))
    ex.launch(spec())
    status = finished(ex, spec())
    assert status.phase is JobPhase.FAILED
    assert (status.reason or "").startswith("result is not valid JSON")
    ex.close()


def test_the_watch_resumes_from_the_last_bookmark(emu: tuple[Emulator, Kubelet]) -> None:
    emulator, _ = emu
    ex = executor(emulator, python_job(WRITE_RESULT))
    ex.cache.start()
    until(lambda: emulator.watched_from)
    # A Job that is not driftwatch's: the watch filters its events out, bookmarks still move on.
    other = emulator.store.create(
        "jobs", NAMESPACE, {**python_job("pass"), "metadata": {"name": "someone-else"}}
    )
    seen = int(other["metadata"]["resourceVersion"])
    until(
        lambda: ex.cache._watch is not None and int(ex.cache._watch.resource_version or 0) >= seen
    )
    emulator.store.close_watches()
    until(lambda: len(emulator.watched_from) >= 2)
    assert int(emulator.watched_from[-1]) >= seen
    assert ex.cache.relists == 1  # resumed, not re-listed
    ex.close()


def test_a_refused_connection_is_retriable(tmp_path: Path) -> None:
    with cluster(tmp_path, kubelet=False) as (emulator, _):
        url = emulator.url
    settings = KubernetesSettings(NAMESPACE, python_job("pass"), request_timeout=2.0)
    ex = KubernetesExecutor(api_client(url), settings, sleep=lambda _: None)
    with pytest.raises(ExecutorError) as caught:
        ex.launch(spec())
    assert caught.value.retriable
    assert "create job driftwatch-fraud-7-train" in str(caught.value)
    ex.close()


def test_a_template_of_the_wrong_types_fails_naming_the_field(
    emu: tuple[Emulator, Kubelet],
) -> None:
    emulator, _ = emu
    template = python_job("pass")
    template["spec"]["backoffLimit"] = "many"
    ex = executor(emulator, template)
    ex.launch(spec())
    status = ex.observe(spec())
    assert status.phase is JobPhase.FAILED
    assert "retrain.kubernetes.template" in (status.reason or "")
    assert "backoffLimit" in (status.reason or "")
    assert emulator.count("create", "jobs") == 0
    ex.close()


def test_closing_the_executor_ends_its_watch_without_waiting_for_the_server(
    emu: tuple[Emulator, Kubelet], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, _ = emu
    emulator.bookmark_every = 3600.0  # the server sends nothing while the watch is open
    settings = KubernetesSettings(NAMESPACE, python_job("pass"), request_timeout=2.0)
    cache = JobCache(api_client(emulator.url), NAMESPACE, watch_seconds=3600)
    ex = KubernetesExecutor(api_client(emulator.url), settings, cache=cache)
    caplog.set_level(logging.DEBUG, logger="retrain.executors.kubernetes_watch")
    ex.cache.start()
    until(lambda: emulator.watched_from)  # the watch request is in flight, its read blocked
    ex.close()
    try:
        # Without cutting the read, the thread would wait out the hour-long watch.
        assert not ex.cache.running
        assert not ex.cache.healthy  # a stopped cache no longer vouches for what it holds
        assert [r.getMessage() for r in caplog.records if r.name.startswith("retrain")] == []
    finally:
        emulator.store.close_watches()


def test_last_bytes_holds_the_end_and_gives_up_past_its_bounds() -> None:
    chunks = [b"ab", b"cd", b"ef"]
    never = 1e18

    def clock() -> float:
        return 0.0

    assert last_bytes(chunks, 10, 100, never, clock) == (b"abcdef", False)
    assert last_bytes(chunks, 6, 100, never, clock) == (b"abcdef", False)
    assert last_bytes(chunks, 3, 100, never, clock) == (b"def", True)
    assert last_bytes(chunks, 3, 6, never, clock) == (b"def", True)
    assert last_bytes(chunks, 3, 5, never, clock) is None
    assert last_bytes([], 3, 5, never, clock) == (b"", False)
    ticks = iter([1.0, 2.0, 3.0])
    assert last_bytes(chunks, 10, 100, 2.5, lambda: next(ticks)) is None
