"""Payloads that break parsers or SQL columns are dead-lettered once; the stream goes on.

Sent by an independent kafka-python producer to ``driftwatch run`` on
PostgreSQL, whose column limits are the strict ones.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from consumers.synthetic import SyntheticPlan, SyntheticStream
from service.config import load_config
from tests.harness.kafka import TestKafka
from tests.harness.scenario import compare, stored_counts, wait_for_count, wait_for_total

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _poisons(valid: dict[str, Any]) -> dict[str, bytes]:
    """Each invalid in its own way; ``valid`` is a valid event to corrupt."""

    def variant(**changes: Any) -> bytes:
        return json.dumps({**valid, **changes}).encode()

    event = json.dumps(valid).encode()
    return {
        "deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,  # RecursionError in the parser
        "deep_extra": event[:-1] + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "utf8": event.replace(valid["event_id"].encode(), b"\xff\xfe\xed\xa0\x80"),
        "number": event.replace(b'"num_01": ', b'"num_01": ' + b"9" * 5000 + b', "_": '),
        "version": variant(model_version="v" * 300),  # a VARCHAR(200) on PostgreSQL
        "event_id": variant(event_id="e" * 600),  # a primary key in the label join
        "huge": variant(event_id="x" * 900_000),  # its dead letter must be truncated
    }


def test_poison_pills_are_dead_lettered_once_and_the_rest_counted(
    kafka: TestKafka, pg_url: str, make_config: Any, services: Any, tmp_path: Path
) -> None:
    config = make_config(pg_url, flush_interval="200ms")
    cfg = load_config(config, env={})
    spec = cfg.model_specs()["wide"]
    start = time.time() - 3 * 86400  # in the past: future events are rejected
    plan = SyntheticPlan(model=spec, rate=50.0, start=start, seed=11)
    stream = SyntheticStream(plan)
    topic = cfg.kafka.topics.predictions
    producer = kafka.producer(max_request_size=2_000_000)
    expected: Counter[tuple[str, str, int]] = Counter()
    poisons: dict[tuple[int, int], tuple[str, bytes]] = {}
    try:
        for i in range(300):
            ev = stream.event(i, start + i / 50.0)
            value = ev.prediction
            if i == 150:  # valid, with a large field nobody reads: counted
                value = value[:-1] + b', "blob": "' + b"y" * 600_000 + b'"}'
            producer.send(topic, key=ev.key, value=value)
            expected[(spec.name, plan.model_version, spec.window_start(ev.event_time))] += 1
            if i % 40 == 20:
                for name, payload in _poisons(json.loads(ev.prediction)).items():
                    meta = producer.send(topic, key=name.encode(), value=payload).get(timeout=30)
                    poisons[(meta.partition, meta.offset)] = (name, payload)
        producer.flush()
    finally:
        producer.close()

    svc = services(config)
    total = sum(expected.values())
    assert wait_for_total(pg_url, total, timeout=120) == total, svc.log_text()[-3000:]
    dlq = f"{topic}-dlq"
    wait_for_count(lambda: len(kafka.read_all(dlq)), len(poisons), timeout=30)
    assert svc.alive(), svc.log_text()[-3000:]
    assert svc.terminate() == 0, svc.log_text()[-3000:]

    letters = [msgspec.json.decode(r.value) for r in kafka.read_all(dlq)]
    at = Counter((d["partition"], d["offset"]) for d in letters)
    assert set(at) == set(poisons) and set(at.values()) == {1}, "each dead-lettered once"
    for d in letters:
        name, payload = poisons[(d["partition"], d["offset"])]
        kept = base64.b64decode(d["value_b64"])
        if name == "huge":
            assert d["value_size"] == len(payload) and payload.startswith(kept)
        else:
            assert kept == payload and "value_size" not in d, name
        assert d["reason"] and d["key"] == name
    assert compare(expected, stored_counts(pg_url)) == (0, 0)
