"""Malformed events go to the dead-letter topic with a reason; nothing else is disturbed."""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.inprocess import InProcessService
from tests.harness.kafka import TestKafka
from tests.harness.scenario import fresh_ingest, stored_counts, wait_for_total

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def running(kafka: TestKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    setup = fresh_ingest(kafka, tmp_path_factory.mktemp("dlq"), "dlq-test", partitions=3)
    service = InProcessService(setup.config)
    state = {
        "db": setup.db,
        "topic": setup.topic,
        "service": service,
        "sent_valid": 0,
        "invalid": [],
        "setup": setup,
        "index": itertools.count(),
        "producer": kafka.producer(),
    }
    yield state
    state["producer"].close()
    service.stop()


def _valid_event(state: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(state["setup"].event(next(state["index"])))
    return event


REQUIRED = ["event_id", "model", "model_version", "timestamp", "features", "prediction"]
wrong_scalar = st.one_of(
    st.integers(),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def malformed(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """A payload that is invalid by construction, never by luck."""
    event = json.loads(json.dumps(base))
    kind = draw(
        st.sampled_from(
            [
                "bytes",
                "not_object",
                "missing",
                "wrong_type",
                "unknown_model",
                "feature_type",
                "timestamp",
                "missing_feature",
                "deep",
                "huge_number",
                "huge_string",
                "bad_utf8",
            ]
        )
    )
    if kind == "bytes":
        return b"\xff" + draw(st.binary(max_size=64))  # never valid UTF-8 JSON
    if kind in ("deep", "huge_number", "bad_utf8"):
        return _hazard(draw, kind, event)
    if kind == "huge_string":  # longer than SQL keeps
        field, limit = draw(st.sampled_from([("event_id", 512), ("model_version", 200)]))
        event[field] = "x" * draw(st.integers(limit + 1, 200_000))
        return json.dumps(event).encode()
    if kind == "not_object":
        return json.dumps(draw(st.lists(st.integers(), max_size=3))).encode()
    if kind == "missing":
        del event[draw(st.sampled_from(REQUIRED))]
    elif kind == "wrong_type":
        field = draw(st.sampled_from(["event_id", "model", "model_version"]))
        event[field] = draw(st.one_of(st.integers(), st.booleans(), st.none()))
    elif kind == "unknown_model":
        event["model"] = "no-such-" + draw(st.text(max_size=8))
    elif kind == "feature_type":
        name = draw(st.sampled_from(["num_01", "num_02", "num_03"]))
        event["features"][name] = draw(
            st.one_of(
                st.text(max_size=5),
                st.booleans(),
                wrong_scalar.filter(lambda v: not isinstance(v, int) or isinstance(v, bool)),
            )
        )
    elif kind == "timestamp":
        event["timestamp"] = draw(
            st.sampled_from(
                [
                    "yesterday",
                    "2026-13-40T00:00:00Z",
                    "",
                    "2026-11-21T14:00:00",  # no UTC offset
                    "1969-12-31T23:59:59Z",  # before the epoch
                    "2099-01-01T00:00:00Z",  # beyond the allowed clock skew
                ]
            )
        )
    else:
        del event["features"]["num_01"]  # not nullable
    return json.dumps(event).encode()


def _hazard(draw: st.DrawFn, kind: str, event: dict[str, Any]) -> bytes:
    """An event the parser itself chokes on, at a drawn place in it."""
    if kind == "deep":  # beyond the parser's recursion limit
        depth = draw(st.integers(3000, 20_000))
        raw = b'{"a":' * depth + b"1" + b"}" * depth
    elif kind == "huge_number":  # beyond float range
        raw = draw(st.sampled_from([b"", b"-"])) + b"9" * draw(st.integers(400, 5000))
    else:
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]))
        raw = b'"' + draw(st.binary(max_size=4)).replace(b'"', b"").replace(b"\\", b"") + bad + b'"'
    # An ignored field is skipped unparsed, numbers and UTF-8 unchecked: only read ones.
    places = ["features", "prediction", "event_id", *(["extra"] if kind == "deep" else [])]
    where = draw(st.sampled_from(places))
    if where == "features":
        event["features"]["cat_1" if kind == "bad_utf8" else "num_01"] = "__hazard__"
    else:
        event[where] = "__hazard__"
    if kind == "deep" and where in ("event_id", "extra"):
        event["model_version"] = 7  # invalid even should a raised recursion limit parse it
    return json.dumps(event).encode().replace(b'"__hazard__"', raw)


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_malformed_events_are_dead_lettered_and_valid_ones_counted(
    running: dict[str, Any], kafka: TestKafka, data: st.DataObject
) -> None:
    producer = running["producer"]
    futures = []
    for _ in range(data.draw(st.integers(20, 60))):
        valid = _valid_event(running)
        producer.send(
            running["topic"], key=valid["event_id"].encode(), value=json.dumps(valid).encode()
        )
        running["sent_valid"] += 1
        bad = data.draw(malformed(valid))
        futures.append((bad, producer.send(running["topic"], key=b"bad", value=bad)))
    producer.flush()
    for payload, fut in futures:
        meta = fut.get(timeout=10)
        running["invalid"].append((meta.partition, meta.offset, payload))

    assert wait_for_total(running["db"], running["sent_valid"], timeout=60) == running["sent_valid"]
    assert running["service"].alive

    letters = _read_dead_letters(kafka, running["topic"] + "-dlq", len(running["invalid"]))
    by_position = {(d["partition"], d["offset"]): d for d in letters}
    assert len(by_position) == len(letters), "no dead letter was published twice"
    for partition, offset, payload in running["invalid"]:
        letter = by_position[(partition, offset)]
        assert letter["topic"] == running["topic"]
        assert base64.b64decode(letter["value_b64"]) == payload
        assert letter["reason"]
        assert letter["seen_at"].endswith("Z")
    assert sum(stored_counts(running["db"]).values()) == running["sent_valid"]


def _read_dead_letters(kafka: TestKafka, topic: str, expected: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    letters: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        letters = [msgspec.json.decode(r.value) for r in kafka.read_all(topic)]
        if len(letters) >= expected:
            break
        time.sleep(0.5)
    return letters


def _send_to_every_partition(running: dict[str, Any], bad: bool = False) -> None:
    """A valid event in each partition (after a malformed one, if ``bad``), stored before
    this returns: each test makes its own premise, whichever tests ran before it."""
    producer = running["producer"]
    futures = []
    for partition in range(3):
        if bad:
            payload = b"{not json"
            sent = producer.send(running["topic"], key=b"bad", value=payload, partition=partition)
            futures.append((payload, sent))
        valid = _valid_event(running)
        key, value = valid["event_id"].encode(), json.dumps(valid).encode()
        producer.send(running["topic"], key=key, value=value, partition=partition)
        running["sent_valid"] += 1
    producer.flush()
    for payload, fut in futures:
        meta = fut.get(timeout=10)
        running["invalid"].append((meta.partition, meta.offset, payload))
    assert wait_for_total(running["db"], running["sent_valid"], timeout=60) == running["sent_valid"]


def test_dead_letter_reasons_are_counted(running: dict[str, Any]) -> None:
    _send_to_every_partition(running, bad=True)
    registry = running["service"].metrics.registry

    def counted() -> float:
        return sum(
            s.value
            for m in registry.collect()
            if m.name == "driftwatch_events_invalid"
            for s in m.samples
            if s.name.endswith("_total")
        )

    # Counted as they were read, before the valid events after them were stored.
    assert counted() >= len(running["invalid"]) >= 3


def test_consumer_lag_is_reported_per_partition(running: dict[str, Any]) -> None:
    _send_to_every_partition(running)
    registry = running["service"].metrics.registry
    deadline = time.monotonic() + 20
    lags: dict[str, float] = {}
    while time.monotonic() < deadline and (len(lags) < 3 or any(lags.values())):
        lags = {
            s.labels["partition"]: s.value
            for m in registry.collect()
            if m.name == "driftwatch_consumer_lag_messages"
            for s in m.samples
            if s.labels.get("topic") == running["topic"]
        }
        time.sleep(0.5)
    assert sorted(lags) == ["0", "1", "2"]
    assert all(v == 0 for v in lags.values()), lags
