"""``make demo``: the whole monitoring loop on one machine, end to end.

Starts a local Kafka broker, migrates a SQLite database, builds the model's
reference profile from a reference CSV, runs ``driftwatch run`` with the
example config while the synthetic producer streams live events for a minute
(half of the features shift after 30 s and the labels stop following the
model's scores; a few malformed events go in too), then prints per window what
was sent, what SQL holds, the drift report and the accuracy from the joined
labels, writes the latest Evidently HTML report, and stops everything. Exits
non-zero if counts differ, a window is unreported, or the drift point is missed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from consumers.synthetic import SyntheticPlan, write_reference_csv
from db.models import PerformanceReportRow
from db.performance_reports import PerformanceReportRepository
from db.reports import DriftReportRepository, ReportSummary
from db.repositories import WindowAggregateRepository, WindowCount
from db.session import make_engine, make_session_factory
from drift.html import decompress_html
from service.config import load_config
from service.dev.localkafka import API_VERSION, LocalKafka

CONFIG = Path(__file__).parent.parent / "examples" / "demo.yaml"
WORKDIR = Path("demo")
MALFORMED = [b"not json", b'{"event_id": "x", "model": "fraud"}', b'{"model": "nope"}']
WINDOW = 10
DRIFT_AT = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _driftwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args, "--config", str(CONFIG)]


def _stored(url: str) -> list[WindowCount]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return WindowAggregateRepository(session).window_counts()
    finally:
        engine.dispose()


def _wait_for(url: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        total = sum(w.events for w in _stored(url))
        if total >= expected:
            break
        time.sleep(0.5)
    return total


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


@dataclass
class _Reports:
    drift: list[ReportSummary]
    top: dict[int, list[str]]
    performance: dict[tuple[str, str], PerformanceReportRow]
    html: bytes | None


def _reports(url: str) -> _Reports:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            repo = DriftReportRepository(session)
            reports = repo.summaries("fraud", limit=1000)
            top = {}
            for r in reports:
                detail = repo.get(r.id)
                top[r.id] = [f.feature for f in detail.top_drifted()] if detail else []
            stored = repo.html("fraud")
            html = (
                None if stored is None or not reports or stored[0] != reports[-1].id else stored[1]
            )
            performance = {
                (_key(p.window_start), p.model_version): p
                for p in PerformanceReportRepository(session).rows("fraud", limit=1000)
            }
            return _Reports(reports, top, performance, html)
    finally:
        engine.dispose()


def _wait_for_reports(url: str, windows: int, timeout: float) -> None:
    """Until every window has its drift and performance reports and the HTML is stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _reports(url)
        if (
            len(found.drift) >= windows
            and len(found.performance) >= windows
            and found.html is not None
        ):
            return
        time.sleep(1)


def _key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(
    windows: list[WindowCount], sent: Counter[str], url: str, drift_point: float
) -> tuple[bool, bool]:
    """Print the per-window table; return (counts match, drift found where it starts)."""
    found = _reports(url)
    by_window = {(_key(r.window_start), r.model_version): r for r in found.drift}
    print(
        f"\n{'window start (UTC)':<21} {'version':<7} {'sent':>5} {'in SQL':>6} {'late':>4}  "
        f"{'drifted':>7} {'dataset':>7}  {'accuracy':>8} {'degraded':>8} {'concept':>7}  "
        "top drifted features"
    )
    counts_ok, detected = True, True
    for w in windows:
        key = _key(w.window_start)
        match = sent.get(key, 0) == w.events
        counts_ok &= match
        r = by_window.get((key, w.model_version))
        p = found.performance.get((key, w.model_version))
        share = "-" if r is None or r.drifted_share is None else f"{r.drifted_share:.0%}"
        flag = "none" if r is None else {None: "n/a", True: "DRIFT", False: "-"}[r.dataset_drift]
        accuracy = "-" if p is None or p.accuracy is None else f"{p.accuracy:.1%}"
        degraded = "none" if p is None else {None: "n/a", True: "YES", False: "-"}[p.degraded]
        concept = "none" if p is None else {None: "n/a", True: "DRIFT", False: "-"}[p.concept_drift]
        # The window holding the drift point is the first that must be flagged.
        start = w.window_start.timestamp()
        after = start + WINDOW > drift_point
        if r is None or r.dataset_drift is not after or p is None or p.degraded is not after:
            detected = False
        marker = "  <-- drift point" if start <= drift_point < start + WINDOW else ""
        wrong = "" if match else "  <-- count differs"
        features = ", ".join(found.top.get(r.id, [])) if r else ""
        print(
            f"{key:<21} {w.model_version:<7} {sent.get(key, 0):>5} {w.events:>6} {w.late:>4}  "
            f"{share:>7} {flag:>7}  {accuracy:>8} {degraded:>8} {concept:>7}  "
            f"{features}{marker}{wrong}"
        )
    missing = set(sent) - {_key(w.window_start) for w in windows}
    for key in sorted(missing):
        counts_ok = False
        print(f"{key:<21} {'':<7} {sent[key]:>5} {0:>6}  <-- missing in SQL")
    print(f"{'total':<29} {sum(sent.values()):>5} {sum(w.events for w in windows):>6}")
    return counts_ok, detected


def _prepare(env: dict[str, str]) -> None:
    """Migrate the database and store the model's reference profile."""
    subprocess.run(_driftwatch("db", "upgrade"), env=env, check=True)
    reference = WORKDIR / "reference.csv"
    spec = load_config(CONFIG).model_specs()["fraud"]
    # Same distributions as the live stream before its drift point, other draws.
    write_reference_csv(SyntheticPlan(spec, draw_seed=1), 20_000, reference)
    subprocess.run(
        _driftwatch("reference", "build", "--model", "fraud", str(reference)),
        env=env,
        check=True,
    )


def _produce(env: dict[str, str], bootstrap_servers: str) -> dict[str, Any]:
    """Stream a minute of live events and a few malformed ones; return what was sent."""
    print(f"streaming live events for 60s (drift at {DRIFT_AT}s) ...", flush=True)
    report_path = WORKDIR / "sent.json"
    options = f"--rate 100 --duration 60s --drift-at {DRIFT_AT}s --realtime --align"
    options += f" --label-delay 5s --report {report_path}"
    subprocess.run([*_driftwatch("produce-demo"), *options.split()], env=env, check=True)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers, api_version=API_VERSION, enable_idempotence=False
    )
    for value in MALFORMED:
        producer.send("predictions", value=value)
    producer.close()
    sent: dict[str, Any] = json.loads(report_path.read_text())
    return sent


def _sent_per_window(sent_report: dict[str, Any]) -> Counter[str]:
    return Counter(
        {
            _key(datetime.fromisoformat(w["window_start"].replace("Z", "+00:00"))): w["count"]
            for w in sent_report["windows"]
        }
    )


def main() -> int:
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir()
    url = f"sqlite:///{WORKDIR / 'driftwatch.db'}"
    metrics_port = _free_port()
    print("starting a local Kafka broker (ZooKeeper + Kafka 0.9) ...", flush=True)
    with LocalKafka(workdir=(WORKDIR / "kafka").resolve(), partitions=3) as kafka:
        for topic, partitions in (("predictions", 3), ("labels", 3), ("driftwatch-dead-letter", 1)):
            kafka.create_topic(topic, partitions)
        env = {
            **os.environ,
            "DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "DRIFTWATCH_DATABASE__URL": url,
            "DRIFTWATCH_METRICS__PORT": str(metrics_port),
        }
        _prepare(env)
        log = (WORKDIR / "driftwatch.log").open("wb")
        service = subprocess.Popen(_driftwatch("run"), env=env, stdout=log, stderr=log)
        try:
            sent_report = _produce(env, kafka.bootstrap_servers)
            drift_point = sent_report["first_event_time"] + DRIFT_AT
            sent = _sent_per_window(sent_report)
            stored_total = _wait_for(url, sent_report["sent"], timeout=60)
            time.sleep(2)  # let the malformed events reach the dead-letter topic
            invalid = _metric(metrics_port, "driftwatch_events_invalid_total")
            print("waiting for the last windows to close and their reports ...", flush=True)
            _wait_for_reports(url, len(sent), timeout=90)
        finally:
            service.send_signal(signal.SIGTERM)
            code = service.wait(timeout=30)
            log.close()
    counts_ok, detected = _summary(_stored(url), sent, url, drift_point)
    counts_ok &= stored_total == sent_report["sent"]
    html = _reports(url).html
    html_path = WORKDIR / "latest_report.html"
    if html is not None:
        html_path.write_text(decompress_html(html), encoding="utf-8")
    print(f"\ndead-lettered: {invalid:.0f} malformed events (of {len(MALFORMED)} sent)")
    print(f"drift point at {_key(datetime.fromtimestamp(drift_point, UTC))}: ", end="")
    print(
        "data drift and the accuracy drop flagged from its window on, nothing before"
        if detected
        else "NOT as expected"
    )
    print(f"latest Evidently report: {html_path if html else 'NOT rendered'}")
    print(f"service exit code after SIGTERM: {code}; its log: {WORKDIR / 'driftwatch.log'}")
    if counts_ok and detected and html and code == 0 and invalid == len(MALFORMED):
        print(
            f"demo: OK - {stored_total} events in SQL, every window matches what was sent "
            "and has its drift and performance reports"
        )
        return 0
    print("demo: FAILED - see the table above")
    return 1


if __name__ == "__main__":
    sys.exit(main())
