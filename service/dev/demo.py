"""``make demo``: the whole loop on one machine, from drift to a promoted candidate.

Starts a local Kafka broker, a SQLite database, a webhook receiver that prints the
alerts it is sent (:mod:`service.dev.alert_printer`) and ``driftwatch run`` with the
HTTP API and the overview page, the local executor and the ``file`` router. The
events come from the demo's model server (:mod:`service.dev.serving`) on the
real-model ``concept`` scenario: a burst of history (3 windows of 10 s before the
drift point, 5 after, every event labelled), then a live stream at 100 events per
second (:mod:`service.dev.served_feed`). The service flags the drift, alerts, its
retrain policy starts a run, the local executor trains a candidate and scores it
against the champion on one holdout, the accepted candidate is rolled out at 25, 50
and 100% of the live stream, each step judged on live windows, and promoted; then
4 windows served by the promoted version give the accuracy after promotion. The
config and sizes are the closed-loop bench's (:mod:`service.dev.loop`).

Prints that timeline (:mod:`service.dev.demo_report`), writes the newest Evidently
report, and ends with ``demo: OK`` only when the loop closed. Everything it writes is
under ``demo/`` (``make clean`` removes it); every process it starts is stopped on
the way out, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import yaml
from kafka import KafkaProducer

from consumers.synthetic import SyntheticPlan
from db.migrate import upgrade
from db.registry import RegistryRepository, Stage
from db.session import make_engine, make_session_factory, transaction
from retrain.rollout.base import Target
from retrain.rollout.file import FileRouter
from service.config import load_config
from service.dev.alert_printer import AlertPrinter
from service.dev.concept import (
    CONCEPT,
    Era,
    accuracy,
    champion_artifact,
    evaluation_rows,
    write_reference_csv,
)
from service.dev.demo_report import Outcome, report
from service.dev.errors import LoopError
from service.dev.localkafka import API_VERSION, LocalKafka
from service.dev.loop import (
    LIVE_RATE,
    POST_WINDOWS,
    PRE_WINDOWS,
    RATE,
    WINDOW,
    follow,
    loop_model,
    read_stored,
)
from service.dev.model_server import ModelServer
from service.dev.served_feed import Feed
from service.dev.serving import ServedStream

WORKDIR = Path("demo")
SEED = 7
TOPICS = {"predictions": 3, "labels": 3, "driftwatch-dead-letter": 1}


@dataclass(frozen=True)
class _Setup:
    config: Path
    database_url: str
    router_file: Path
    api: str  # the API's base URL
    token: str
    pre: float  # the champion's accuracy on fresh pre-drift rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(kafka: LocalKafka, alerts_url: str, secret: str, pre: float) -> dict[str, Any]:
    work = WORKDIR.resolve()
    model = loop_model(pre, work / "rollout.json", roll_out=True)
    # The closed loop has no reference profile; the demo builds one, and the service then
    # bins predictions on its edges, which the canary's divergence check compares on
    # too. DIVERGENCE_THRESHOLD (service/dev/loop.py) was measured on 10 bins; the check
    # merges finer bins for a step's sample size by itself (drift.canary.divergence),
    # to more than 10 groups at a few hundred predictions.
    model["drift"] = {"reference_bins": 10}
    return {
        "kafka": {
            "bootstrap_servers": kafka.bootstrap_servers,
            "api_version": ".".join(str(p) for p in API_VERSION),
            "group_id": "driftwatch-demo",
            "topics": {
                "predictions": "predictions",
                "labels": "labels",
                "dead_letter": "driftwatch-dead-letter",
            },
            "consumer": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
        },
        "database": {"url": f"sqlite:///{work / 'driftwatch.db'}"},
        "archive": {"uri": str(work / "archive")},
        "ingest": {"flush_events": 5000, "flush_interval": "500ms"},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "log_level": "INFO",
        "evaluation": {"interval": "1s", "idle_partition_timeout": "3s"},
        "api": {
            "host": "127.0.0.1",
            "port": _free_port(),
            "session_secret_file": str(work / "session.secret"),
            "tokens": [
                {"name": "admin", "token_file": str(work / "admin.token"), "scopes": ["read"]}
            ],
        },
        "alerts": {
            "interval": "1s",
            "channels": {"printer": {"type": "webhook", "url": alerts_url, "secret": secret}},
            "routes": [{"channels": ["printer"]}],
        },
        "retrain": {
            "executor": "local",
            "workdir": str(work / "runs"),
            "artifacts_uri": str(work / "models"),
            "tick": "1s",
        },
        "models": {"fraud": model},
    }


def _prepare(kafka: LocalKafka, printer: AlertPrinter, secret: str) -> _Setup:
    """The champion (registered and served), the config, the database, the reference."""
    champion_file = (WORKDIR / "champion.skops").resolve()
    champion, sha256 = champion_artifact(champion_file, SEED, CONCEPT)
    pre = accuracy(champion, evaluation_rows(SEED, Era.PRE, CONCEPT))
    router_file = (WORKDIR / "rollout.json").resolve()
    FileRouter(router_file, "fraud").promote(Target("v1", str(champion_file), sha256))
    token = secrets.token_hex(24)
    (WORKDIR / "admin.token").write_text(token + "\n")
    (WORKDIR / "session.secret").write_text(secrets.token_hex(32) + "\n")
    cfg = _config(kafka, printer.url, secret, pre)
    config = WORKDIR / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    url = str(cfg["database"]["url"])
    engine = make_engine(url)
    try:
        upgrade(engine)
        with transaction(make_session_factory(engine)) as s:
            RegistryRepository(s).register(
                "fraud", "v1", str(champion_file), sha256, Stage.PRODUCTION, datetime.now(UTC)
            )
    finally:
        engine.dispose()
    reference = WORKDIR / "reference.csv"
    write_reference_csv(reference, champion, SEED, scenario=CONCEPT)
    subprocess.run(
        [*_cli("reference", "build", "--model", "fraud", str(reference)), "--config", str(config)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{cfg['api']['port']}"
    return _Setup(config, url, router_file, api, token, pre)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


@contextlib.contextmanager
def _service(config: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``driftwatch run``, stopped with SIGTERM (then SIGKILL) on the way out."""
    with (WORKDIR / "driftwatch.log").open("wb") as log:
        process = subprocess.Popen(
            [*_cli("run"), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _feed(setup: _Setup, kafka: LocalKafka, start: float) -> Feed:
    spec = load_config(setup.config, env={}).model_specs()["fraud"]
    plan = SyntheticPlan(
        model=spec, rate=RATE, start=start, drift_at=PRE_WINDOWS * WINDOW, seed=SEED
    )
    stream = ServedStream(plan, ModelServer(setup.router_file, "fraud", reread_ms=0), CONCEPT)

    def producer() -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            api_version=API_VERSION,
            acks="all",
            linger_ms=5,
            enable_idempotence=False,  # the 0.9 broker cannot
        )

    before, after = int(RATE * WINDOW * PRE_WINDOWS), int(RATE * WINDOW * POST_WINDOWS)
    return Feed(producer, stream, ("predictions", "labels"), before, after, LIVE_RATE)


def _wait_ready(api: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LoopError(f"driftwatch run exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise LoopError(f"the API at {api} did not answer in {timeout:.0f} s")


def _run(keep_up: float) -> int:
    started = time.time()
    secret = secrets.token_hex(16)
    print("starting a local Kafka broker (ZooKeeper + Kafka 0.9) ...", flush=True)
    with (
        LocalKafka(workdir=(WORKDIR / "kafka").resolve(), partitions=3) as kafka,
        AlertPrinter(secret, started) as printer,
    ):
        kafka.create_topics(TOPICS)
        print("training the champion, building its reference profile ...", flush=True)
        setup = _prepare(kafka, printer, secret)
        # The history ends two windows ago, aligned to the window grid.
        history = (PRE_WINDOWS + POST_WINDOWS) * WINDOW
        start = (time.time() - history - 2 * WINDOW) // WINDOW * WINDOW
        feed = _feed(setup, kafka, start)
        with _service(setup.config) as service:
            _wait_ready(setup.api, service, 60)
            print(f"HTTP API:      {setup.api}/v1/runs  (bearer token in demo/admin.token)")
            print(f"overview page: {setup.api}/  (sign in with the token in demo/admin.token)")
            print(f"alerts go to:  {printer.url}; the service's log: demo/driftwatch.log")
            print("sending the history (drift point after 3 windows), then live events ...")
            try:
                onset = feed.start(timeout=120)
                engine = make_engine(setup.database_url)
                sessions = make_session_factory(engine)
                after = follow(sessions, feed, roll_out=True)
            finally:
                feed.stop()
            outcome = Outcome.collect(
                sessions, setup.api, setup.token, feed, start, onset, setup.pre, after
            )
            stored = read_stored(sessions)
            engine.dispose()
            if keep_up > 0:
                print(f"keeping the API and the page up for {keep_up:.0f} s ...", flush=True)
                time.sleep(keep_up)
    ok = report(outcome, stored, printer.alerts(), WORKDIR / "latest_report.html")
    print(f"{time.time() - started:.0f} s in all")
    return 0 if ok else 1


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds every ``with``: each process started is stopped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The whole loop, from drift to promotion.")
    parser.add_argument(
        "--keep-up",
        type=float,
        default=0.0,
        help="seconds to keep the API and the overview page up after the loop closed (default 0)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir()
    try:
        return _run(args.keep_up)
    except KeyboardInterrupt:
        print("demo: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    except LoopError as exc:
        print(f"demo: FAILED - {exc}; see demo/driftwatch.log", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
