"""Labels a day late, off the hot path: pending rows, flush latency, exactly-once, a SIGKILL.

Time-compressed: ``--events`` predictions span two days of event time and are
produced at ``--rate`` events per wall second (1,000 by default), so a day of
event time passes in about a minute. Half of the predictions get a label within
ten minutes (event time), three in ten a label one day later, the rest none;
every message is sent in event-time order, as a live system would see it. The
model's horizon (``labels.join_ttl``) is two hours: the streaming join keeps
only that much in ``pending_predictions``, and the late-label job joins the
day-late labels from the archive.

``driftwatch run`` (ingest and the late-label job in one process) is SIGKILLed
once, 60% of the way through, and restarted. At the end, SQL is compared with
what was produced, window by window: labelled and unlabelled predictions, so a
late label joined twice or never shows.

Prints the largest ``pending_predictions`` seen (beside what the horizon and
what a one-day TTL would hold), flush latency p50/p99 (bucket upper bounds of
``driftwatch_flush_duration_seconds``) during the first day and during the
second, when late labels arrive and are joined, and the counts. Last line:
``label_delay: pending_max=<n> (horizon ~<n>, 1-day TTL ~<n>) flush_ms early
mean/p50/p99=<a>/<b>/<c> late mean/p50/p99=<d>/<e>/<f> late_joined=<n>/<n>
lost=<n> duplicated=<n> kills=1`` (``-/-/-`` for a phase in which no flush fell: a
short ``--quick`` run on a loaded host). ``--quick`` runs 6,000 events (the smoke test).
"""

from __future__ import annotations

import argparse
import math
import random
import socket
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from _common import broker, create_topic
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from consumers.synthetic import SyntheticPlan, SyntheticStream
from db.migrate import upgrade
from db.session import make_engine
from service.config import load_config
from tests.harness.late_labels import DelayedSend, pending_predictions, push, stored
from tests.harness.scenario import ServiceProcess, compare, wide_model, write_config

DAY, HORIZON, TIMELY = 86400.0, 7200.0, 600.0
PARTITIONS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def messages(stream: SyntheticStream, n: int, seed: int) -> tuple[list[Any], DelayedSend]:
    """(event time, topic index, key, value) of every message, in event-time order."""
    rng = random.Random(seed)
    plan, sent, out = stream.plan, DelayedSend(), []
    span = 2 * DAY
    for i in range(n):
        t = plan.start + i * span / n
        ev = stream.event(i, t)
        window = (plan.model_version, plan.model.window_start(t))
        sent.predicted[window] += 1
        out.append((t, 0, ev.key, ev.prediction))
        draw = rng.random()
        if draw >= 0.8:
            continue
        body = msgspec.json.decode(ev.label)
        at = t + rng.uniform(0.0, TIMELY) if draw < 0.5 else t + DAY
        (sent.timely if draw < 0.5 else sent.late)[window] += 1
        body["timestamp"] = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
        out.append((at, 1, ev.key, msgspec.json.encode(body)))
    out.sort(key=lambda m: m[0])
    return out, sent


SUM = -1.0  # the key of the histogram's sum of seconds among the bucket bounds


def scrape(port: int) -> Counter[float]:
    """Cumulative flush-duration bucket counts by upper bound, and their sum of seconds
    under ``SUM`` (empty if unreachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return Counter()
    out: Counter[float] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "driftwatch_flush_duration_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    out[float(s.labels["le"])] = int(s.value)
                elif s.name.endswith("_sum"):
                    out[SUM] = s.value  # type: ignore[assignment]
    return out


def _ms(stats: tuple[float, float, float]) -> str:
    return "/".join("-" if math.isnan(v) else f"{v:.0f}" for v in stats)


def quantiles(before: Counter[float], after: Counter[float]) -> tuple[float, float, float]:
    """Mean, p50 and p99 (the last two bucket upper bounds), in ms, of the flushes
    between two scrapes."""
    bounds = sorted(b for b in after if b != SUM)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:  # no flush between the two scrapes (a short --quick run, a loaded host)
        return float("nan"), float("nan"), float("nan")
    mean = (after[SUM] - before.get(SUM, 0)) / total * 1000
    picked = [
        next(b for b, c in zip(bounds, counts, strict=True) if c >= q * total) for q in (0.5, 0.99)
    ]
    return mean, picked[0] * 1000, picked[1] * 1000


def committed(url: str) -> int:
    """Offsets committed to SQL, over both topics' partitions."""
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return int(
                c.execute(
                    text("SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def consuming(url: str, before: int, svc: ServiceProcess, timeout: float = 120.0) -> float:
    """Wait until the service commits past ``before``; the seconds waited."""
    began = time.monotonic()
    while committed(url) <= before:
        if not svc.alive() or time.monotonic() - began > timeout:
            raise SystemExit(f"driftwatch run is not consuming:\n{svc.log_text()[-3000:]}")
        time.sleep(0.2)
    return time.monotonic() - began


class Watch(threading.Thread):
    """Polls ``pending_predictions`` and keeps the largest count seen."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.most, self.stopped = url, 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.25):
            try:
                self.most = max(self.most, pending_predictions(self.url))
            except Exception:  # a locked SQLite read: the next poll retries
                continue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="wall events/s produced")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    parser.add_argument("--quick", action="store_true", help="6,000 events (smoke test)")
    parser.add_argument("--workdir", type=Path, help="keep the database, archive and log here")
    args = parser.parse_args()
    if args.quick:
        args.events = 6000
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        run(kafka, workdir, args)


def run(kafka: Any, workdir: Path, args: argparse.Namespace) -> None:
    url = args.database_url or f"sqlite:///{workdir / 'delay.db'}"
    upgrade(make_engine(url))
    topic = f"bench-delay-{int(time.time())}"
    for name in (topic, f"{topic}-labels", f"{topic}-dlq"):
        create_topic(kafka, name, PARTITIONS)
    port = free_port()
    labels = {"task": "classification", "join_ttl": "2h"}
    config = write_config(
        workdir / "config.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=url,
        topic=topic,
        group_id=topic,
        flush_interval="250ms",
        models={"fraud": wide_model(numerical=4, categorical=1, window="1h", labels=labels)},
        extra={
            "metrics": {"port": port},
            "late_labels": {"interval": "2s", "max_rows": 20_000},
        },
    )
    cfg = load_config(config, env={})
    topics = (cfg.kafka.topics.predictions, cfg.kafka.topics.labels)
    start = time.time() - 4 * DAY
    stream = SyntheticStream(SyntheticPlan(model=cfg.model_specs()["fraud"], start=start))
    todo, sent = messages(stream, args.events, args.seed)
    svc = ServiceProcess(config, workdir / "service.log")
    svc.start()
    watch = Watch(url)
    watch.start()
    producer = kafka.producer(linger_ms=5)
    marks: dict[str, Counter[float]] = {}
    kill_at = int(len(todo) * 0.6)  # about 1.4 days of event time in
    bounds = {
        "early_from": start + 0.1 * DAY,
        "early_to": start + 0.9 * DAY,
        "late_from": start + 1.5 * DAY,
        "late_to": start + 2.0 * DAY,
    }
    began, paused, waiting = time.monotonic(), 0.0, True
    for i, (at, which, key, value) in enumerate(todo):
        producer.send(topics[which], key=key, value=value)
        if i % 200 == 0:
            if waiting and i:  # a consumer reading both topics again: go on
                producer.flush()
                paused += consuming(url, committed(url), svc)
                waiting = False
            behind = began + paused + i / (args.rate * len(todo) / args.events) - time.monotonic()
            if behind > 0:
                time.sleep(behind)
        for mark, when in bounds.items():
            if mark not in marks and at >= when:
                marks[mark] = scrape(port)
        if i == kill_at:
            producer.flush()
            svc.kill()
            svc.start()
            # Live, the producers would go on while the group rebalances, and the restarted
            # consumer would read a backlog of each topic at its own pace. Here the stream
            # waits, so that event time compressed 1,700-fold does not turn seconds of
            # downtime into days of one topic running ahead of the other.
            waiting = True
    producer.flush()
    # Watermarks past every late label: each can be decided.
    push(producer, topics, stream, start + 3 * DAY + 3 * HORIZON, PARTITIONS, "end")
    producer.close()
    expected = sent.timely + sent.late
    deadline = time.monotonic() + 120 + args.events / 1000
    while time.monotonic() < deadline:
        got = stored(url, "fraud")
        if sum(got.labeled[k] for k in expected) >= sum(expected.values()):
            break
        time.sleep(1.0)
    time.sleep(3.0)  # a few more runs of the job: anything joined twice would show
    watch.stopped.set()
    svc.terminate()
    report(sent, stored(url, "fraud"), watch.most, marks, args)


def report(
    sent: DelayedSend, got: Any, most: int, marks: dict[str, Counter[float]], args: Any
) -> None:
    main = sent.predicted.keys()
    expected = sent.timely + sent.late
    labeled = Counter({k: got.labeled[k] for k in main if got.labeled[k]})
    lost, duplicated = compare(expected, labeled)
    unlabeled_off = sum(abs(got.unlabeled[k] - (sent.predicted[k] - expected[k])) for k in main)
    late_joined = sum(labeled.values()) - sum(sent.timely.values())
    per_second = args.events / (2 * DAY)
    early = quantiles(marks.get("early_from", Counter()), marks.get("early_to", Counter()))
    late = quantiles(marks.get("late_from", Counter()), marks.get("late_to", Counter()))
    print(f"{args.events} predictions over 2 days of event time at {args.rate:.0f}/s")
    print(
        f"pending_predictions: most {most} rows; the 2h horizon holds ~{per_second * HORIZON:.0f}"
    )
    revised = sum(1 for r in got.revisions.values() if r)
    print(f"unlabelled counts off by {unlabeled_off}; {revised} reports revised")
    print(
        f"label_delay: pending_max={most} (horizon ~{per_second * HORIZON:.0f}, "
        f"1-day TTL ~{per_second * DAY:.0f}) flush_ms early mean/p50/p99={_ms(early)} "
        f"late mean/p50/p99={_ms(late)} late_joined={late_joined}/"
        f"{sum(sent.late.values())} lost={lost} duplicated={duplicated} kills=1"
    )


if __name__ == "__main__":
    main()
