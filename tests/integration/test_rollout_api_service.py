"""End to end: ``driftwatch run`` serves the rollout routes. A rollout started, paused,
resumed and aborted over HTTP is recorded by the API and carried out by the service's
own rollout tick through the ``file`` router, and the verdict token reads its verdict."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.synthetic import SyntheticPlan, write_reference_csv
from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from service.config import load_config
from tests.harness.kafka import TestKafka
from tests.harness.scenario import ServiceProcess, wide_model, write_config

pytestmark = [pytest.mark.kafka]

OPS, CONTROLLER = "ops-read-write-token", "controller-verdict-token"
T = "2026-12-01T00:00:00+00:00"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _token(name: str, secret: str, scopes: list[str]) -> dict[str, Any]:
    return {"name": name, "sha256": hashlib.sha256(secret.encode()).hexdigest(), "scopes": scopes}


def _seed(database_url: str) -> int:
    """Production ``v1`` of ``wide`` and an accepted run whose candidate ``v2`` waits."""
    t = datetime.fromisoformat(T)
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as s:
            registry = RegistryRepository(s)
            registry.register("wide", "v1", "file:///m/v1.skops", "a" * 64, Stage.PRODUCTION, t)
            runs = RunRepository(s)
            run = runs.start("wide", "request", "test", t, t, "accepted", t)
            assert run is not None
            candidate = registry.register(
                "wide", "v2", "file:///m/v2.skops", "b" * 64, Stage.CANDIDATE, t, run_id=run.id
            )
            run.candidate_version_id = candidate.id
            runs.enter(run, "accepted", "test", t, final=True)
            return run.id
    finally:
        engine.dispose()


def _until(what: Callable[[], Any], svc: ServiceProcess, seconds: float = 60) -> Any:
    """Poll ``what`` until it answers something true (the service ticks every second)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            answer = what()
        except httpx.TransportError:
            assert svc.alive(), svc.log_text()
            answer = None
        if answer:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"not reached in {seconds} s\n{svc.log_text()}")


def test_rollout_commands_over_http_are_carried_out_by_the_service(
    kafka: TestKafka, sqlite_url: str, tmp_path: Path
) -> None:
    topic = f"rollout-api-{os.getpid()}"
    kafka.create_topics({topic: 1, f"{topic}-dlq": 1})
    port, split = _free_port(), tmp_path / "split.json"
    model = {
        **wide_model(numerical=2, categorical=1, window="10s"),
        "rollout": {
            "enabled": True,
            "router": "file",
            "file": {"path": str(split)},
            "steps": [{"weight": 10, "min_duration": "1h"}, {"weight": 100}],
        },
    }
    config = write_config(
        tmp_path / "driftwatch.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=sqlite_url,
        topic=topic,
        group_id=f"group-{topic}",
        models={"wide": model},
        extra={
            "retrain": {"tick": "1s", "workdir": str(tmp_path / "runs")},
            "evaluation": {"render_html": False},
            "api": {
                "port": port,
                "session_secret": "integration-test-session-secret-0123456789",
                "tokens": [
                    _token("ops", OPS, ["read", "write"]),
                    _token("controller", CONTROLLER, ["verdict"]),
                ],
            },
        },
    )
    spec = load_config(config, env={}).model_specs()["wide"]
    reference = tmp_path / "reference.csv"
    write_reference_csv(SyntheticPlan(spec, seed=5, draw_seed=99), 2000, reference)
    command = [sys.executable, "-m", "service.cli", "reference", "build", "--model", "wide"]
    built = subprocess.run(
        [*command, "--quiet", "--config", str(config), str(reference)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    run_id = _seed(sqlite_url)

    def split_file() -> dict[str, Any] | None:
        return json.loads(split.read_text(encoding="utf-8")) if split.exists() else None

    svc = ServiceProcess(config, tmp_path / "service.log")
    svc.start()
    try:
        ops = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {OPS}"}
        )
        r = _until(lambda: ops.post("/v1/models/wide/rollouts", json={"run_id": run_id}), svc)
        assert r.status_code == 202, r.text
        rollout = f"/v1/rollouts/{r.json()['rollout_id']}"
        # The service's tick applies step 1: the canary gets 10 %.
        _until(lambda: (split_file() or {}).get("canary_percent") == 10, svc)
        assert ops.get(rollout).json()["weights"][0]["canary_percent"] == 10
        paused = ops.post(f"{rollout}/pause", json={"reason": "a look first"})
        assert (paused.status_code, paused.json()["phase"]) == (202, "paused")
        assert ops.post(f"{rollout}/resume").json()["phase"] == "progressing"
        aborted = ops.post(f"{rollout}/abort", headers={"Idempotency-Key": "abort-1"})
        assert (aborted.status_code, aborted.json()["phase"]) == (202, "rolling_back")
        again = ops.post(f"{rollout}/abort", headers={"Idempotency-Key": "abort-1"})
        assert again.json() == aborted.json()
        # The tick rolls back: stable alone is served and the rollout is over.
        _until(lambda: ops.get(rollout).json()["phase"] == "rolled_back", svc)
        served = split_file()
        assert served is not None and served["canary"] is None
        assert served["stable"]["version"] == "v1"
        shown = ops.get(rollout).json()
        assert [h["phase"] for h in shown["history"]] == [
            "pending", "progressing", "paused", "progressing", "rolling_back", "rolled_back",
        ]  # fmt: skip
        controller = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {CONTROLLER}"},
        )
        verdict = controller.get(f"{rollout}/verdict").json()
        assert verdict["verdict"] == "fail" and "rolled back" in verdict["reason"]
        assert controller.get(rollout).status_code == 403
    finally:
        assert svc.terminate() == 0, svc.log_text()
