"""End to end: a stream with a drift point -> driftwatch run -> drift reports in PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from consumers.synthetic import SyntheticPlan, SyntheticStream, produce, write_reference_csv
from db.reports import DriftReportRepository, ReportSummary
from db.session import make_engine, make_session_factory
from drift.html import decompress_html
from service.config import load_config
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wait_for_total, wide_model

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

WINDOW = 10
CALM_WINDOWS = 50
DRIFTED_WINDOWS = 3
RATE = 100.0
SEED = 11


def _reports(url: str) -> tuple[list[ReportSummary], tuple[int, bytes] | None]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            repo = DriftReportRepository(session)
            return repo.summaries("wide", limit=1000), repo.html("wide")
    finally:
        engine.dispose()


def _driftwatch(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_first_drifted_window_is_flagged_and_calm_windows_never_are(
    kafka: TestKafka, pg_url: str, make_config, services, tmp_path: Path
) -> None:
    # Windows larger than their sample: judged on the merged partition sketches.
    model = {
        **wide_model(window=f"{WINDOW}s"),
        "allowed_lateness": "0s",
        "drift": {"window_sample": 500},
    }
    config = make_config(
        pg_url,
        models={"wide": model},
        extra={"evaluation": {"interval": "1s", "idle_partition_timeout": "3s"}},
    )
    spec = load_config(config, env={}).model_specs()["wide"]
    reference = tmp_path / "reference.csv"
    write_reference_csv(SyntheticPlan(spec, seed=SEED, draw_seed=99), 5000, reference)
    built = _driftwatch(config, "reference", "build", "--model", "wide", str(reference), "--quiet")
    assert built.returncode == 0, built.stderr
    assert "reference profile v1 of model wide: 5000 rows" in built.stdout

    # Event time two days back, starting on a window boundary: the drift point
    # begins window number CALM_WINDOWS exactly.
    start = (time.time() - 2 * 86400) // WINDOW * WINDOW
    windows = CALM_WINDOWS + DRIFTED_WINDOWS
    plan = SyntheticPlan(spec, rate=RATE, start=start, drift_at=CALM_WINDOWS * WINDOW, seed=SEED)
    producer = kafka.producer()
    try:
        sent = produce(
            producer,
            [SyntheticStream(plan)],
            int(windows * WINDOW * RATE),
            spec_topic(config),
            None,
        )
    finally:
        producer.close()

    svc = services(config)
    assert wait_for_total(pg_url, sent.sent, timeout=120) == sent.sent
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reports, html = _reports(pg_url)
        if len(reports) == windows and html is not None and html[0] == reports[-1].id:
            break
        time.sleep(1)
    assert svc.terminate() == 0, svc.log_text()

    assert len(reports) == windows, svc.log_text()
    assert [r.window_start.timestamp() for r in reports] == [
        start + i * WINDOW for i in range(windows)
    ]
    assert [r.dataset_drift for r in reports[:CALM_WINDOWS]] == [False] * CALM_WINDOWS
    assert [r.dataset_drift for r in reports[CALM_WINDOWS:]] == [True] * DRIFTED_WINDOWS
    assert [(r.source, r.events) for r in reports] == [("sketch", WINDOW * RATE)] * windows

    # The service rendered the newest report; the CLI renders any on demand.
    assert html is not None and "<html" in decompress_html(html[1]).lower()
    out = tmp_path / "report.html"
    rendered = _driftwatch(config, "report", "html", str(reports[CALM_WINDOWS].id), "-o", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert "num_00" in out.read_text(encoding="utf-8")
    listing = _driftwatch(config, "reports", "--model", "wide", "--limit", "5")
    assert listing.returncode == 0 and "DRIFT" in listing.stdout


def spec_topic(config: Path) -> str:
    return load_config(config, env={}).kafka.topics.predictions
