"""The dead_letter_rate alert on a real broker: malformed events raise it, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from db.outbox import AlertOutbox
from db.session import make_engine, make_session_factory
from service.alerts.replica import DEAD_LETTER_RATE, SERVICE_MODEL
from service.wiring.watches import build_tally, build_watches
from tests.harness.inprocess import InProcessService
from tests.harness.kafka import TestKafka
from tests.harness.scenario import fresh_ingest, wait_for_count, wait_for_total

pytestmark = pytest.mark.kafka
VALID, MALFORMED = 100, 20


def test_a_burst_of_malformed_events_queues_one_dead_letter_rate_alert(
    kafka: TestKafka, tmp_path: Path
) -> None:
    setup = fresh_ingest(kafka, tmp_path, "dlrate", partitions=2)
    topic, db, config, cfg = setup.topic, setup.db, setup.config, setup.cfg
    tally = build_tally(cfg)
    service = InProcessService(config, tally)
    sessions = make_session_factory(make_engine(db))
    watches = build_watches(cfg, sessions, lambda: service.loop.progress, tally)
    producer = kafka.producer()
    try:
        for i in range(VALID):
            producer.send(topic, key=str(i).encode(), value=setup.event(i))
        for i in range(MALFORMED):
            producer.send(topic, key=f"bad-{i}".encode(), value=b"{not json")
        producer.flush()
        assert wait_for_total(db, VALID, timeout=60) == VALID
        assert wait_for_count(lambda: tally.counts().dead, MALFORMED, timeout=30) == MALFORMED
        first = watches.dead_letters.tick()
        again = watches.dead_letters.tick()
    finally:
        producer.close()
        service.stop()
    assert len(first) == 1 and again == []
    with sessions() as s:
        events = [e for e in AlertOutbox(s).events() if e.kind == DEAD_LETTER_RATE]
    assert [(e.model, e.key) for e in events] == [(SERVICE_MODEL, first[0])]
    payload = json.loads(events[0].payload)
    assert (payload["events"], payload["dead_letters"]) == (VALID + MALFORMED, MALFORMED)
    assert payload["ratio"] == round(MALFORMED / (VALID + MALFORMED), 6)
    assert (payload["threshold"], payload["min_events"]) == (0.05, 100)
    assert payload["window_seconds"] == 300.0
    assert payload["scope"] == f"{topic}/{topic}:0-1"
    assert payload["partitions"] == {topic: [0, 1]}
