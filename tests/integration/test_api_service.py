"""End to end: ``driftwatch run`` with a model that has no labels (and no labels topic)
starts, serves the API, and reports data drift there, with no performance section."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from consumers.synthetic import SyntheticPlan, SyntheticStream, produce, write_reference_csv
from service.config import load_config
from tests.harness.kafka import TestKafka
from tests.harness.scenario import ServiceProcess, wide_model, write_config

pytestmark = [pytest.mark.kafka]

WINDOW, CALM, DRIFTED, RATE, SEED = 10, 6, 3, 100.0, 5
TOKEN = "ops-read-write-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_model_without_labels_starts_and_its_drift_is_served(
    kafka: TestKafka, sqlite_url: str, tmp_path: Path
) -> None:
    topic = f"nolabels-{os.getpid()}"
    kafka.create_topics({topic: 3, f"{topic}-dlq": 1})  # and no labels topic at all
    port = _free_port()
    model = {
        **wide_model(numerical=4, categorical=1, window=f"{WINDOW}s"),
        "allowed_lateness": "0s",
    }
    assert "labels" not in model
    config = write_config(
        tmp_path / "driftwatch.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=sqlite_url,
        topic=topic,
        group_id=f"group-{topic}",
        models={"wide": model},
        extra={
            "evaluation": {"interval": "1s", "idle_partition_timeout": "3s", "render_html": False},
            "api": {
                "port": port,
                "session_secret": "integration-test-session-secret-0123456789",
                # Metrics only behind a read token: no open metrics port at all.
                "metrics_open": False,
                "tokens": [
                    {
                        "name": "ops",
                        "sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                        "scopes": ["read", "write"],
                    }
                ],
            },
        },
    )
    spec = load_config(config, env={}).model_specs()["wide"]
    reference = tmp_path / "reference.csv"
    write_reference_csv(SyntheticPlan(spec, seed=SEED, draw_seed=99), 3000, reference)
    command = [sys.executable, "-m", "service.cli", "reference", "build", "--model", "wide"]
    built = subprocess.run(
        [*command, "--quiet", "--config", str(config), str(reference)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    start = (time.time() - 2 * 86400) // WINDOW * WINDOW
    plan = SyntheticPlan(spec, rate=RATE, start=start, drift_at=CALM * WINDOW, seed=SEED)
    producer = kafka.producer()
    try:
        produce(
            producer, [SyntheticStream(plan)], int((CALM + DRIFTED) * WINDOW * RATE), topic, None
        )
    finally:
        producer.close()

    svc = ServiceProcess(config, tmp_path / "service.log")
    svc.start()
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        drifted: list[dict[str, object]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not drifted:
            time.sleep(1)
            try:
                page = client.get("/v1/models/wide/drift", params={"limit": 100})
            except httpx.TransportError:
                assert svc.alive(), svc.log_text()
                continue
            drifted = [r for r in page.json()["items"] if r["dataset_drift"]]
        assert drifted, svc.log_text()
        assert client.get("/readyz").status_code == 200
        detail = client.get("/v1/models/wide").json()
        assert detail["labels"] is False and detail["latest_performance"] is None
        assert detail["latest_drift"]["id"] >= drifted[0]["id"]
        assert client.get("/v1/models/wide/performance").json()["items"] == []
        assert httpx.post(f"http://127.0.0.1:{port}/v1/models/wide/retrain").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        scraped = client.get("/metrics")
        assert scraped.status_code == 200 and "driftwatch_healthy 1.0" in scraped.text
    finally:
        assert svc.terminate() == 0, svc.log_text()
