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
mends. Every label joins its prediction. And the mirror: ten predictions of another
model before each one, so the labels run ahead, wait in ``pending_labels``, and are
held back while more than ``hold_backlog`` predictions wait.
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


def _produce(kafka: TestKafka, topic: str, model: dict[str, Any], longer: str) -> None:
    """The backlog; ``longer`` names the topic with another model's filler in it."""
    spec = ModelConfig.model_validate(model).spec("wide")
    start = time.time() - 4 * 3600
    stream = SyntheticStream(SyntheticPlan(model=spec, rate=0.1, start=start, seed=3))
    producer = kafka.producer()
    futures = []
    for i, ev in enumerate(stream.events(EVENTS)):
        observed = ev.event_time + DELAY
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(observed))
        for j in range(FILLER if longer == "predictions" else 0):
            other = msgspec.json.decode(ev.prediction)
            other.update(model="other", event_id=f"other-{i}-{j}")
            futures.append(producer.send(topic, key=ev.key, value=msgspec.json.encode(other)))
        futures.append(producer.send(topic, key=ev.key, value=ev.prediction))
        for j in range(FILLER if longer == "labels" else 0):
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
                select(func.sum(pa.predicted), func.sum(pa.labeled), func.sum(pa.unlabeled)).where(
                    pa.model == "wide"
                )
            ).one()
    finally:
        engine.dispose()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


@pytest.mark.parametrize(
    ("longer", "held"),
    [
        ("labels", "predictions held back until their labels catch up: partitions"),
        ("predictions", "labels held back until their predictions catch up: partitions"),
    ],
    ids=["labels-longer", "predictions-longer"],
)
def test_a_backlog_whose_one_topic_is_ten_times_longer_joins_every_label(
    kafka: TestKafka,
    db_url: str,
    make_config: Any,
    topic: str,
    services: Any,
    longer: str,
    held: str,
) -> None:
    model = wide_model(window="1m", labels={"task": "classification", "join_ttl": "10m"})
    _produce(kafka, topic, model, longer)
    models = {"wide": model}
    if longer == "predictions":
        models["other"] = wide_model(window="1m")
    config = make_config(
        db_url,
        models=models,
        flush_events=500,
        flush_interval="100ms",
        extra_consumer={"max_partition_fetch_bytes": 8192, "max_poll_records": 100},
    )
    svc = services(config)
    # Bounded only so that a failure ends the test; the counts decide.
    wait_for_count(lambda: _sums(db_url)[1], EVENTS, timeout=180)
    assert svc.terminate(timeout=10) == 0, svc.log_text()
    assert _sums(db_url) == (EVENTS, EVENTS, 0), svc.log_text()[-3000:]
    # The premise: one side got a horizon ahead of the other while thousands of the
    # other's messages waited (with longer labels, the predictions read 2.2 times the
    # labels' event time per fetched byte), and was held back.
    assert held in svc.log_text()
