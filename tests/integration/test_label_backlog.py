"""A backlog of predictions and labels read by ``driftwatch run`` from a real broker.

Three hours of one model's predictions (one every 10 s) and their labels (300 s
after each, well within the 10-minute join horizon) wait in the topics before the
service starts; ten labels of another model precede each label, so the labels
topic is about ten times longer. Small fetches make the client read both topics
side by side by bytes, so the predictions run hours ahead of their labels; they
must wait for them rather than expire (consumers/join.py), and the loop holds
them back in Kafka while more than ``hold_backlog`` labels wait
(``LabelIntake.hold``), which pauses and resumes a partition with fetched records
in line: the kafka-python path ``service.kafka_clients.restore_parked_records``
mends. Every label joins its prediction.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select

from consumers.synthetic import SyntheticPlan, SyntheticStream
from db.models import PerformanceAggregate
from db.session import make_engine, make_session_factory
from service.config import ModelConfig
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wait_for_count, wide_model

pytestmark = pytest.mark.kafka

EVENTS = 1080
FILLER = 10
DELAY = 300.0


def _produce(kafka: TestKafka, topic: str, model: dict[str, Any]) -> None:
    spec = ModelConfig.model_validate(model).spec("wide")
    start = time.time() - 4 * 3600
    stream = SyntheticStream(SyntheticPlan(model=spec, rate=0.1, start=start, seed=3))
    producer = kafka.producer()
    futures = []
    for i, ev in enumerate(stream.events(EVENTS)):
        futures.append(producer.send(topic, key=ev.key, value=ev.prediction))
        observed = ev.event_time + DELAY
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(observed))
        for j in range(FILLER):
            other = {"event_id": f"other-{i}-{j}", "model": "other", "label": 0, "timestamp": stamp}
            futures.append(
                producer.send(f"{topic}-labels", key=ev.key, value=msgspec.json.encode(other))
            )
        label = msgspec.json.decode(ev.label)
        label["timestamp"] = stamp
        futures.append(
            producer.send(f"{topic}-labels", key=ev.key, value=msgspec.json.encode(label))
        )
    producer.flush(timeout=180)
    for f in futures:
        f.get(timeout=10)
    producer.close()


def _sums(db_url: str) -> tuple[int, int, int]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as s:
            pa = PerformanceAggregate
            row = s.execute(
                select(func.sum(pa.predicted), func.sum(pa.labeled), func.sum(pa.unlabeled))
            ).one()
    finally:
        engine.dispose()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


def test_a_backlog_whose_labels_topic_is_ten_times_longer_joins_every_label(
    kafka: TestKafka, db_url: str, make_config: Any, topic: str, services: Any
) -> None:
    model = wide_model(window="1m", labels={"task": "classification", "join_ttl": "10m"})
    _produce(kafka, topic, model)
    config = make_config(
        db_url,
        models={"wide": model},
        flush_events=500,
        flush_interval="100ms",
        extra_consumer={"max_partition_fetch_bytes": 8192, "max_poll_records": 100},
    )
    svc = services(config)
    # Bounded only so that a failure ends the test; the counts decide.
    wait_for_count(lambda: _sums(db_url)[1], EVENTS, timeout=180)
    assert svc.terminate(timeout=10) == 0, svc.log_text()
    assert _sums(db_url) == (EVENTS, EVENTS, 0), svc.log_text()[-3000:]
    # The premise: the predictions (2.2 times the labels' event time per fetched byte)
    # got a horizon ahead while thousands of labels waited, and were held back.
    assert "predictions held back until their labels catch up: partitions" in svc.log_text()
