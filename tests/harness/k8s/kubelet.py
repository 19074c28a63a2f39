"""A small kubelet and Job controller for the emulator: each Job's first container
command runs as a local process with the container's env.

The termination-message path is bind-mounted, as a kubelet does: an env value
equal to the container's ``terminationMessagePath`` is pointed at a host file,
whose first 4096 bytes become the terminated state's ``message`` (with
``FallbackToLogsOnError``, the log tail when the file is empty and the
container failed). ``backoffLimit`` failed Pods are retried, then the Job fails
``BackoffLimitExceeded``; past ``activeDeadlineSeconds`` the Pod is killed and
the Job fails ``DeadlineExceeded``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.k8s.server import Emulator
from tests.harness.k8s.store import NotFound, Obj, now_iso

MESSAGE_LIMIT = 4096
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


@dataclass
class _Run:
    namespace: str
    job: str
    pod: str
    process: subprocess.Popen[bytes]
    log: Path
    message: Path
    policy: str
    started: float
    container: str = "main"
    failures: int = 0
    attempts: list[str] = field(default_factory=list)


class Kubelet:
    def __init__(
        self, emulator: Emulator, workdir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.api = emulator
        self.store = emulator.store
        self.workdir = workdir
        self.base_env = (
            env
            if env is not None
            else {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_")}
        )
        self._runs: dict[tuple[str, str], _Run] = {}
        self._failures: dict[tuple[str, str], int] = {}
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
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(NotFound):  # deleted under us: the next pass sees it
                self._sync()

    def _sync(self) -> None:
        for ns in self.store.namespaces("jobs"):
            for job in self.store.list("jobs", ns, None)[0]:
                key = (ns, job["metadata"]["name"])
                status = job.get("status") or {}
                if any(c.get("status") == "True" for c in status.get("conditions") or []):
                    continue
                run = self._runs.get(key)
                if run is None:
                    if self.running.is_set():
                        self._start(job)
                else:
                    self._check(job, run)
        for key, run in list(self._runs.items()):
            try:
                self.store.get("jobs", *key)
            except NotFound:  # deleted: kill its process
                if run.process.poll() is None:
                    run.process.kill()
                    run.process.wait()
                del self._runs[key]

    def _start(self, job: Obj) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        attempt = self._failures.get((ns, name), 0)
        pod_name = f"{name}-{attempt}"
        spec = job["spec"]["template"]["spec"]
        container = spec["containers"][0]
        directory = self.workdir / ns / pod_name
        directory.mkdir(parents=True, exist_ok=True)
        message = directory / "termination-log"
        message.write_bytes(b"")
        mount = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        env = dict(self.base_env)
        for item in container.get("env") or []:
            value = item.get("value", "")
            env[item["name"]] = str(message) if value == mount else value
        log = directory / "log"
        command = [*(container.get("command") or []), *(container.get("args") or [])]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        labels = {"job-name": name, "controller-uid": job["metadata"]["uid"]}
        pod = {
            "metadata": {"name": pod_name, "labels": labels},
            "spec": spec,
            "status": {"phase": "Running", "startTime": now_iso()},
        }
        self.store.create("pods", ns, pod)
        self.pods_started += 1
        if attempt == 0:
            self.store.update(
                "jobs", ns, name,
                lambda o: o.setdefault("status", {}).update(startTime=now_iso(), active=1),
            )  # fmt: skip
        policy = container.get("terminationMessagePolicy") or "File"
        started = time.monotonic() if attempt == 0 else self._runs_started(ns, name)
        self._runs[(ns, name)] = _Run(
            ns, name, pod_name, process, log, message, policy, started, container["name"]
        )

    def _runs_started(self, ns: str, name: str) -> float:
        run = self._runs.get((ns, name))
        return run.started if run is not None else time.monotonic()

    def _check(self, job: Obj, run: _Run) -> None:
        self.api.pod_logs[(run.namespace, run.pod)] = run.log.read_text(errors="replace")
        deadline = job["spec"].get("activeDeadlineSeconds")
        code = run.process.poll()
        if code is None:
            if deadline is not None and time.monotonic() - run.started > deadline:
                run.process.kill()
                run.process.wait()
                self._finish_pod(run, 137, "Error")
                self._fail(run, "DeadlineExceeded", "Job was active longer than specified deadline")
            return
        self._finish_pod(run, code, "Completed" if code == 0 else "Error")
        if code == 0:
            self.store.update("jobs", run.namespace, run.job, _condition("Complete", None, None, 1))
            return
        failures = self._failures.get((run.namespace, run.job), 0) + 1
        self._failures[(run.namespace, run.job)] = failures
        if failures > int(job["spec"].get("backoffLimit", 6)):
            self._fail(run, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        else:
            self._start(job)

    def _fail(self, run: _Run, reason: str, message: str) -> None:
        self.store.update("jobs", run.namespace, run.job, _condition("Failed", reason, message, 0))

    def _finish_pod(self, run: _Run, code: int, reason: str) -> None:
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
                "containerStatuses": [
                    {"name": run.container, "ready": False, "restartCount": 0, "image": "local",
                     "imageID": "", "state": {"terminated": terminated}}
                ],
            }  # fmt: skip

        self.store.update("pods", run.namespace, run.pod, change)


def _condition(kind: str, reason: str | None, message: str | None, succeeded: int) -> Any:
    def change(job: Obj) -> None:
        status = job.setdefault("status", {})
        condition = {"type": kind, "status": "True", "lastTransitionTime": now_iso()}
        if reason:
            condition.update(reason=reason, message=message)
        status["conditions"] = [condition]
        status["active"] = 0
        status["succeeded" if succeeded else "failed"] = 1
        status["completionTime" if succeeded else "failedTime"] = now_iso()

    return change


def temp_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="kubelet-"))
