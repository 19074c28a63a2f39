"""Which Pod judges a Job (creation order, not names), retried Jobs, a dead watch and
what reaches a Job's environment: the kubernetes executor through the official client
over HTTP against the emulator, whose Pods have random name suffixes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from retrain.executors import JobPhase, JobSpec, Mode
from retrain.executors.kubernetes import KubernetesExecutor, KubernetesSettings, render
from tests.harness.k8s.cluster import NAMESPACE, api_client, cluster, python_job, until
from tests.harness.k8s.kubelet import Kubelet, image_env
from tests.harness.k8s.server import Emulator
from tests.harness.k8s.store import SUFFIX_ALPHABET
from tests.unit.retrain.test_kubernetes_executor import (  # close_executors: autouse
    WRITE_RESULT,
    close_executors,  # noqa: F401
    executor,
    finished,
    spec,
)


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[tuple[Emulator, Kubelet]]:
    with cluster(tmp_path) as (emulator, node):
        assert node is not None
        yield emulator, node


def _attempts(marker: Path, failing: str, passing: str) -> str:
    """A job whose first attempt runs ``failing`` and every later one ``passing``."""
    return (
        "import json, os, pathlib, sys\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        f"    {failing}\n"
        f"{passing}\n"
    )


def test_a_retried_job_is_judged_by_its_good_attempt_whatever_the_pod_names(
    tmp_path: Path, emu: tuple[Emulator, Kubelet]
) -> None:
    """backoffLimit 2, the first attempt fails, the second writes the result; the first
    Pod's generated name sorts after the second's, as random suffixes may."""
    emulator, node = emu
    emulator.store.suffixes = iter(["zzzzz", "bbbbb"]).__next__
    script = _attempts(
        tmp_path / "tried",
        "print('first attempt fails'); sys.exit(1)",
        "open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w').write(json.dumps({'attempt': 2}))",
    )
    template = python_job(script)
    template["spec"]["backoffLimit"] = 2
    ex = executor(emulator, template)
    ex.launch(spec())
    status = finished(ex, spec())
    assert status.phase is JobPhase.SUCCEEDED, status
    assert status.result == {"attempt": 2}
    pods = emulator.store.list("pods", NAMESPACE, f"job-name={spec().name}")[0]
    names = [p["metadata"]["name"] for p in pods]
    assert names == [f"{spec().name}-bbbbb", f"{spec().name}-zzzzz"]  # as the API lists them
    assert [p["status"]["phase"] for p in pods] == ["Succeeded", "Failed"]
    job = emulator.store.get("jobs", NAMESPACE, spec().name)
    assert {p["metadata"]["ownerReferences"][0]["uid"] for p in pods} == {job["metadata"]["uid"]}
    assert (job["status"]["failed"], job["status"]["succeeded"], node.pods_started) == (1, 1, 2)
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    ex.close()


def test_a_job_out_of_retries_reports_its_newest_attempt(
    tmp_path: Path, emu: tuple[Emulator, Kubelet]
) -> None:
    emulator, _ = emu
    emulator.store.suffixes = iter(["zzzzz", "bbbbb"]).__next__
    script = _attempts(
        tmp_path / "tried",
        "print('first'); sys.exit(3)",
        "print('second'); sys.exit(4)",
    )
    template = python_job(script)
    template["spec"]["backoffLimit"] = 1
    ex = executor(emulator, template)
    ex.launch(spec())
    status = finished(ex, spec())
    assert status.phase is JobPhase.FAILED
    assert (status.reason or "").startswith("BackoffLimitExceeded")
    assert "(exit code 4)" in (status.reason or ""), status.reason
    assert status.log_tail == "second\n"
    job = emulator.store.get("jobs", NAMESPACE, spec().name)
    assert job["status"]["failed"] == 2 and "succeeded" not in job["status"]
    assert [c["type"] for c in job["status"]["conditions"]] == ["FailureTarget", "Failed"]
    ex.close()


def test_generated_pod_names_are_random_suffixes_of_the_job_name(
    emu: tuple[Emulator, Kubelet],
) -> None:
    emulator, _ = emu
    ex = executor(emulator, python_job(WRITE_RESULT))
    ex.launch(spec())
    assert finished(ex, spec()).phase is JobPhase.SUCCEEDED
    (pod,) = emulator.store.list("pods", NAMESPACE, f"job-name={spec().name}")[0]
    assert re.fullmatch(rf"{spec().name}-[{SUFFIX_ALPHABET}]{{5}}", pod["metadata"]["name"])
    ex.close()


NO_WATCH = {
    "rules": [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list",
                                                                  "delete"]},
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
    ]
}  # fmt: skip


def test_a_dead_watch_is_logged_counted_and_the_job_read_instead(
    tmp_path: Path, emu: tuple[Emulator, Kubelet], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, _ = emu
    go = tmp_path / "go"
    script = (
        "import json, os, pathlib, time\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.02)\n"
        "open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w').write(json.dumps({'ok': 1}))\n"
    )
    errors: list[str] = []
    settings = KubernetesSettings(
        NAMESPACE, python_job(script), request_timeout=2.0, resync_seconds=3600
    )
    ex = KubernetesExecutor(
        api_client(emulator.url), settings, sleep=lambda _: None, on_watch_error=errors.append
    )
    ex.launch(spec())
    until(lambda: ex.cache.get(spec().name) is not None)
    assert ex.cache.healthy and ex.observe(spec()).phase is JobPhase.RUNNING
    # RBAC loses "watch" (the list still works, the resync is an hour away); the Job then
    # completes, which no watch reports: the cache keeps it running.
    emulator.role = NO_WATCH
    emulator.store.close_watches()
    until(lambda: errors)
    go.touch()
    status = finished(ex, spec())
    assert status.result == {"ok": 1}
    cached = ex.cache.get(spec().name).status  # the cache never saw it end
    assert cached is None or cached.succeeded is None
    assert errors[0].startswith("403") and ex.cache.errors >= 1 and not ex.cache.healthy
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "403" in r.getMessage()]
    assert len(warned) == 1  # one warning per streak, not one per retry
    emulator.role = None
    until(lambda: ex.cache.healthy)
    ex.close()


def test_a_job_gets_nothing_of_the_service_environment_beyond_the_contract(
    emu: tuple[Emulator, Kubelet], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, _ = emu
    for name in ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "DRIFTWATCH_DATABASE__URL"):
        monkeypatch.setenv(name, "secret")
    script = (
        "import json, os; open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w')"
        ".write(json.dumps({'names': sorted(os.environ)}))"
    )
    ex = executor(emulator, python_job(script))
    ex.launch(spec())
    status = finished(ex, spec())
    assert status.phase is JobPhase.SUCCEEDED and status.result is not None, status
    job = emulator.store.get("jobs", NAMESPACE, spec().name)
    carried = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert carried == {"EXTRA", *spec().contract_env("r")}  # the template's and the contract
    assert set(status.result["names"]) == carried | set(image_env())


@pytest.mark.parametrize("model", ["fräud", "模型", "ﬁn²", "a" * 80])
def test_label_values_are_ascii_label_syntax_whatever_the_model_name(model: str) -> None:
    s = JobSpec(7, model, Mode.TRAIN, "/d", "/o/", timedelta(seconds=60))
    job = render(s, KubernetesSettings(NAMESPACE, python_job("pass")))
    label = job["metadata"]["labels"]["driftwatch/model"]
    assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", label), label
