"""``make demo``: the whole ingestion loop on one machine, end to end.

Starts a local Kafka broker, migrates a SQLite database, runs ``driftwatch
run`` with the example config while the synthetic producer streams live events
for about a minute (plus a few malformed ones), then prints the per-window
counts read back from SQL next to what the producer sent, and stops everything.
Exits non-zero if they differ.
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
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

from db.repositories import WindowAggregateRepository, WindowCount
from db.session import make_engine, make_session_factory
from service.localkafka import API_VERSION, LocalKafka

CONFIG = Path(__file__).parent / "examples" / "demo.yaml"
WORKDIR = Path("demo")
MALFORMED = [b"not json", b'{"event_id": "x", "model": "fraud"}', b'{"model": "nope"}']


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


def _report(windows: list[WindowCount], sent: Counter[str]) -> bool:
    print(f"\n{'window start (UTC)':<21} {'version':<8} {'sent':>6} {'in SQL':>7} {'late':>5}")
    ok = True
    for w in windows:
        key = w.window_start.strftime("%Y-%m-%dT%H:%M:%SZ")
        match = sent.get(key, 0) == w.events
        ok &= match
        mark = "" if match else "  <-- differs"
        print(
            f"{key:<21} {w.model_version:<8} {sent.get(key, 0):>6} {w.events:>7} {w.late:>5}{mark}"
        )
    missing = set(sent) - {w.window_start.strftime("%Y-%m-%dT%H:%M:%SZ") for w in windows}
    for key in sorted(missing):
        ok = False
        print(f"{key:<21} {'':<8} {sent[key]:>6} {0:>7}  <-- missing in SQL")
    print(f"{'total':<30} {sum(sent.values()):>6} {sum(w.events for w in windows):>7}")
    return ok


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
        subprocess.run(_driftwatch("db", "upgrade"), env=env, check=True)
        log = (WORKDIR / "driftwatch.log").open("wb")
        service = subprocess.Popen(_driftwatch("run"), env=env, stdout=log, stderr=log)
        try:
            print("streaming live events for 60s (drift at 30s) ...", flush=True)
            report_path = WORKDIR / "sent.json"
            subprocess.run(
                [
                    *_driftwatch("produce-demo"),
                    "--rate",
                    "100",
                    "--duration",
                    "60s",
                    "--drift-at",
                    "30s",
                    "--realtime",
                    "--report",
                    str(report_path),
                ],
                env=env,
                check=True,
            )
            producer = KafkaProducer(
                bootstrap_servers=kafka.bootstrap_servers,
                api_version=API_VERSION,
                enable_idempotence=False,
            )
            for value in MALFORMED:
                producer.send("predictions", value=value)
            producer.close()
            sent_report = json.loads(report_path.read_text())
            sent = Counter(
                {
                    datetime.fromisoformat(w["window_start"].replace("Z", "+00:00"))
                    .astimezone(UTC)
                    .strftime("%Y-%m-%dT%H:%M:%SZ"): w["count"]
                    for w in sent_report["windows"]
                }
            )
            stored_total = _wait_for(url, sent_report["sent"], timeout=60)
            time.sleep(2)  # let the malformed events reach the dead-letter topic
            invalid = _metric(metrics_port, "driftwatch_events_invalid_total")
        finally:
            service.send_signal(signal.SIGTERM)
            code = service.wait(timeout=30)
            log.close()
    ok = _report(_stored(url), sent) and stored_total == sent_report["sent"]
    print(f"\ndead-lettered: {invalid:.0f} malformed events (of {len(MALFORMED)} sent)")
    print(f"service exit code after SIGTERM: {code}; its log: {WORKDIR / 'driftwatch.log'}")
    if ok and code == 0 and invalid == len(MALFORMED):
        print(f"demo: OK - {stored_total} events in SQL, every window matches what was sent")
        return 0
    print("demo: FAILED - SQL does not match what was sent (see above)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
