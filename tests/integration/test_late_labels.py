"""Labels long after the horizon: Kafka -> driftwatch run -> the archive -> the late join.

Event time is made, not waited for: the labels of a third of the predictions come
six hours (of event time) after them, far past the ten-minute horizon. The
streaming join counts those predictions unlabelled when the horizon runs out;
the late-label job then joins the late labels from the archive, exactly once,
into the same windows, and each window's report gets a revision. The kill test
runs the job in a process of its own that SIGKILLs itself at a scripted step,
then once more to the end: the counts equal what was produced.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consumers.synthetic import SyntheticPlan, SyntheticStream
from service.config import load_config
from tests.harness.kafka import TestKafka
from tests.harness.late_labels import DelayedSend, Stored, produce_delayed, push, send_late, stored
from tests.harness.scenario import REPO, ServiceProcess, wide_model

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]
HORIZON, LATE = 600.0, 6 * 3600.0
PARTITIONS = 3  # create_topics' default


def until(read: Callable[[], Stored], done: Callable[[Stored], bool], timeout: float) -> Stored:
    deadline = time.monotonic() + timeout
    while True:
        now = read()
        if done(now) or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def total(windows: Any, keys: Any) -> int:
    return sum(windows[k] for k in keys)


def stream_through_the_horizon(
    kafka: TestKafka, config: Path, pg_url: str, svc: ServiceProcess
) -> tuple[DelayedSend, SyntheticStream, tuple[str, str], float]:
    """Predictions and timely labels, joined; then every window final and reported, and
    the late labels sent. Returns what was sent and the far point the watermarks reached."""
    cfg = load_config(config, env={})
    topics = (cfg.kafka.topics.predictions, cfg.kafka.topics.labels)
    stream = SyntheticStream(
        SyntheticPlan(model=cfg.model_specs()["fraud"], rate=2.0, start=time.time() - 3 * 86400)
    )
    producer = kafka.producer()
    try:
        sent = produce_delayed(
            producer, stream, 1200, topics, horizon=HORIZON, late_delay=LATE, seed=5
        )
        main = sent.predicted.keys()
        read = lambda: stored(pg_url, "fraud")  # noqa: E731
        got = until(read, lambda s: total(s.labeled, main) >= total(sent.timely, main), 120)
        assert total(got.labeled, main) == total(sent.timely, main), svc.log_text()[-3000:]
        # Only now the watermarks jump: no timely label can meet a swept prediction.
        far = sent.last_time + LATE + 2 * 3600
        push(producer, topics, stream, far, PARTITIONS, "a")
        got = until(read, lambda s: main <= s.revisions.keys() and s.pending_main == 0, 120)
        assert main <= got.revisions.keys(), svc.log_text()[-3000:]
        assert got.pending_main == 0  # every prediction of the stream left SQL at its horizon
        assert {k: got.unlabeled[k] for k in main} == {
            k: sent.predicted[k] - sent.timely[k] for k in main
        }
        send_late(producer, topics[1], sent)
        # Predictions move on: the late labels parked as early are swept in turn.
        push(producer, topics, stream, far + 1, PARTITIONS, "b")
    finally:
        producer.close()
    return sent, stream, topics, far


def check_exact(sent: DelayedSend, got: Stored) -> None:
    main = sent.predicted.keys()
    assert {k: got.predicted[k] for k in main} == dict(sent.predicted)
    assert {k: got.labeled[k] for k in main} == {k: sent.labeled[k] for k in main}
    assert {k: got.unlabeled[k] for k in main} == {
        k: sent.predicted[k] - sent.labeled[k] for k in main
    }
    assert {k: got.reported_labeled[k] for k in main} == {k: sent.labeled[k] for k in main}
    for k in main:
        assert (got.revisions[k] > 0) == (sent.late[k] > 0), k
    assert got.pending_main == 0


def config_for(make_config: Any, pg_url: str, late: dict[str, Any]) -> Path:
    labels = {"task": "classification", "join_ttl": "10m"}
    model = wide_model(numerical=2, categorical=1, window="1m", labels=labels)
    return make_config(  # type: ignore[no-any-return]
        pg_url,
        models={"fraud": model},
        flush_interval="200ms",
        extra={"evaluation": {"interval": "500ms"}, "late_labels": late},
    )


def test_late_labels_are_joined_once_from_the_archive_and_revise_their_reports(
    kafka: TestKafka, pg_url: str, make_config: Any, services: Any
) -> None:
    config = config_for(make_config, pg_url, {"interval": "1s", "max_rows": 200})
    svc = services(config)
    sent, *_ = stream_through_the_horizon(kafka, config, pg_url, svc)
    main = sent.predicted.keys()
    got = until(
        lambda: stored(pg_url, "fraud"),
        lambda s: total(s.labeled, main) >= total(sent.labeled, main) and s.pending_main == 0,
        120,
    )
    check_exact(sent, got)
    assert svc.terminate() == 0, svc.log_text()[-3000:]
    check_exact(sent, stored(pg_url, "fraud"))


def run_join(config: Path, kill: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.harness.late_join", str(config), kill],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


# About 21 batches of 50 label offsets (3 partitions); the 15th holds late labels.
@pytest.mark.parametrize("kill", ["read:15", "written:15", "committed:15"])
def test_sigkill_of_the_late_join_at_each_step_counts_every_late_label_once(
    kafka: TestKafka, pg_url: str, make_config: Any, services: Any, kill: str
) -> None:
    # The service ingests but does not join late labels: only the killed process does.
    config = config_for(make_config, pg_url, {"enabled": False, "max_rows": 50})
    svc = services(config)
    sent, *_ = stream_through_the_horizon(kafka, config, pg_url, svc)
    main = sent.predicted.keys()
    # Every late label is archived and committed, and swept from pending_labels (parked as
    # early: its prediction had gone), before the join starts.
    swept = until(lambda: stored(pg_url, "fraud"), lambda s: s.parked_main == 0, 120)
    assert swept.parked_main == 0, svc.log_text()[-3000:]
    before = stored(pg_url, "fraud")
    killed = run_join(config, kill)
    assert killed.returncode == -9, killed.stderr[-3000:]
    after_kill = stored(pg_url, "fraud")
    # Whatever batch the kill fell in, SQL holds whole batches only: every window still
    # adds up, and no late label is in twice.
    for k in main:
        assert after_kill.labeled[k] + after_kill.unlabeled[k] == sent.predicted[k], k
        assert before.labeled[k] <= after_kill.labeled[k] <= sent.labeled[k], k
    # Mid-way (the stream is seeded): batches 13 and 14 joined late labels, not all of them.
    assert total(before.labeled, main) < total(after_kill.labeled, main)
    assert total(after_kill.labeled, main) < total(sent.labeled, main)
    done = run_join(config, "none")
    assert done.returncode == 0, done.stderr[-3000:]
    check_exact(sent, stored(pg_url, "fraud"))
    assert svc.terminate() == 0, svc.log_text()[-3000:]
