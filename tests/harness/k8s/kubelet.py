"""A small kubelet and Job controller for the emulator: each Job's first container
command runs as a local process with the container's env.

Pods are made as the Job controller makes them: ``generateName`` ``<job>-`` (the API
server appends five random characters, so names do not sort by attempt), the Job's
labels ``job-name`` / ``controller-uid`` (legacy and ``batch.kubernetes.io/``), an
owner reference to the Job, and ``creationTimestamp`` at second resolution.

The termination-message path is bind-mounted, as a kubelet does: an env value
equal to the container's ``terminationMessagePath`` is pointed at a host file,
whose first 4096 bytes become the terminated state's ``message`` (with
``FallbackToLogsOnError``, the log tail when the file is empty and the
container failed). A failed Pod counts in the Job's ``status.failed``; up to
``backoffLimit`` failures another Pod is started, no earlier than the next second
after the failed one was created (the controller's back-off, shortened from 10 s:
it keeps creation times in attempt order, as real back-off does), then the Job
fails ``BackoffLimitExceeded``. Past ``activeDeadlineSeconds`` the Pod is killed
and the Job fails ``DeadlineExceeded``. Terminal conditions come as Kubernetes
1.31+ writes them: ``SuccessCriteriaMet`` then ``Complete``, ``FailureTarget``
then ``Failed``.

The container's environment is its template's ``env`` over :func:`image_env`, what
an image's own ``ENV`` would set: nothing of the test process's (the service's)
environment reaches a Pod unless the Job carries it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.k8s.server import Emulator
from tests.harness.k8s.store import NotFound, Obj, now_iso

MESSAGE_LIMIT = 4096
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
_IMAGE_ENV = ("PATH", "HOME", "LANG", "TZ", "TMPDIR")


def image_env() -> dict[str, str]:
    """The base environment of the emulated image: the interpreter's own settings."""
    return {
        k: v for k, v in os.environ.items() if k in _IMAGE_ENV or k.startswith(("LC_", "PYTHON"))
    }


@dataclass
class _Run:
    """One Job on this node: its current Pod (None while backing off) and its history."""

    namespace: str
    job: str
    uid: str
    started: float
    failures: int = 0
    pod: str | None = None
    created: str = ""  # the current (or last) Pod's creationTimestamp
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    message: Path | None = None
    policy: str = "File"
    container: str = "main"


class Kubelet:
    def __init__(
        self, emulator: Emulator, workdir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.api = emulator
        self.store = emulator.store
        self.workdir = workdir
        self.base_env = env if env is not None else image_env()
        self._runs: dict[tuple[str, str], _Run] = {}
        self._stop = threading.Event()
        self.running = threading.Event()  # cleared: no new Pod starts (a node that is not ready)
        self.running.set()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.pods_started = 0

    def start(self) -> Kubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for run in self._runs.values():
            _kill(run)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(NotFound):  # deleted under us: the next pass sees it
                self._sync()

    def _sync(self) -> None:
        for ns in self.store.namespaces("jobs"):
            for job in self.store.list("jobs", ns, None)[0]:
                key = (ns, job["metadata"]["name"])
                if _finished(job):
                    continue
                run = self._runs.get(key)
                if run is None:
                    if self.running.is_set():
                        meta = job["metadata"]
                        run = _Run(ns, meta["name"], meta["uid"], time.monotonic())
                        self._runs[key] = run
                        self._start(job, run)
                else:
                    self._check(job, run)
        for key, run in list(self._runs.items()):
            try:
                self.store.get("jobs", *key)
            except NotFound:  # deleted: kill its process
                _kill(run)
                del self._runs[key]

    def _start(self, job: Obj, run: _Run) -> None:
        name, ns = run.job, run.namespace
        spec = job["spec"]["template"]["spec"]
        container = spec["containers"][0]
        template_labels = (job["spec"]["template"].get("metadata") or {}).get("labels") or {}
        labels = {
            **template_labels,
            "job-name": name,
            "controller-uid": run.uid,
            "batch.kubernetes.io/job-name": name,
            "batch.kubernetes.io/controller-uid": run.uid,
        }
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": run.uid,
                 "controller": True, "blockOwnerDeletion": True}  # fmt: skip
        pod = self.store.create(
            "pods",
            ns,
            {
                "metadata": {"generateName": f"{name}-", "labels": labels,
                             "ownerReferences": [owner]},
                "spec": spec,
                "status": {"phase": "Running", "startTime": now_iso()},
            },
        )  # fmt: skip
        run.pod, run.created = pod["metadata"]["name"], pod["metadata"]["creationTimestamp"]
        directory = self.workdir / ns / run.pod
        directory.mkdir(parents=True, exist_ok=True)
        run.message = directory / "termination-log"
        run.message.write_bytes(b"")
        mount = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        env = dict(self.base_env)
        for item in container.get("env") or []:
            value = item.get("value", "")
            env[item["name"]] = str(run.message) if value == mount else value
        run.log = directory / "log"
        command = [*(container.get("command") or []), *(container.get("args") or [])]
        with open(run.log, "wb") as out:
            run.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        run.policy = container.get("terminationMessagePolicy") or "File"
        run.container = container["name"]
        self.pods_started += 1

        def active(o: Obj) -> None:
            status = o.setdefault("status", {})
            status.setdefault("startTime", now_iso())
            status.update(active=1, ready=0)

        self.store.update("jobs", ns, name, active)

    def _check(self, job: Obj, run: _Run) -> None:
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline is not None and time.monotonic() - run.started > deadline:
            if run.process is not None and run.process.poll() is None:
                _kill(run)
                self._finish_pod(run, 137, "Error")
                run.failures += 1
            self._fail(run, "DeadlineExceeded", "Job was active longer than specified deadline")
            return
        if run.process is None:  # backing off after a failed attempt
            if self.running.is_set() and now_iso() > run.created:
                self._start(job, run)
            return
        assert run.log is not None and run.pod is not None
        self.api.pod_logs[(run.namespace, run.pod)] = run.log.read_text(errors="replace")
        code = run.process.poll()
        if code is None:
            return
        self._finish_pod(run, code, "Completed" if code == 0 else "Error")
        run.process = None
        if code == 0:
            self._end(run, "Complete", None, None)
            return
        run.failures += 1
        if run.failures > int(job["spec"].get("backoffLimit", 6)):
            self._fail(run, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        else:
            self.store.update(
                "jobs", run.namespace, run.job,
                lambda o: o.setdefault("status", {}).update(active=0, failed=run.failures),
            )  # fmt: skip

    def _fail(self, run: _Run, reason: str, message: str) -> None:
        self._end(run, "Failed", reason, message)

    def _end(self, run: _Run, kind: str, reason: str | None, message: str | None) -> None:
        def change(job: Obj) -> None:
            status = job.setdefault("status", {})
            stamp = now_iso()
            interim = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            conditions = []
            for type_ in (interim, kind):
                condition = {"type": type_, "status": "True", "lastProbeTime": stamp,
                             "lastTransitionTime": stamp}  # fmt: skip
                if reason:
                    condition.update(reason=reason, message=message)
                conditions.append(condition)
            status["conditions"] = conditions
            status.update(active=0, ready=0)
            if run.failures:
                status["failed"] = run.failures
            if kind == "Complete":
                status.update(succeeded=1, completionTime=stamp)

        self.store.update("jobs", run.namespace, run.job, change)

    def _finish_pod(self, run: _Run, code: int, reason: str) -> None:
        assert run.log is not None and run.message is not None and run.pod is not None
        text = run.log.read_text(errors="replace")
        self.api.pod_logs[(run.namespace, run.pod)] = text
        message = run.message.read_bytes()[:MESSAGE_LIMIT].decode("utf-8", errors="replace")
        if not message and code != 0 and run.policy == "FallbackToLogsOnError":
            message = "".join(text.splitlines(keepends=True)[-80:])[-2048:]
        terminated: dict[str, Any] = {"exitCode": code, "reason": reason, "finishedAt": now_iso()}
        if message:
            terminated["message"] = message
        phase = "Succeeded" if code == 0 else "Failed"

        def change(pod: Obj) -> None:
            pod["status"] = {
                "phase": phase,
                "startTime": (pod.get("status") or {}).get("startTime"),
                "containerStatuses": [
                    {"name": run.container, "ready": False, "restartCount": 0, "image": "local",
                     "imageID": "", "state": {"terminated": terminated}}
                ],
            }  # fmt: skip

        self.store.update("pods", run.namespace, run.pod, change)


def _finished(job: Obj) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in conditions)  # fmt: skip


def _kill(run: _Run) -> None:
    if run.process is not None and run.process.poll() is None:
        run.process.kill()
        run.process.wait()


def temp_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="kubelet-"))
