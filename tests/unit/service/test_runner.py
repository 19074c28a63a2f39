"""The service's wiring: which streaming detectors run, and how windows are judged."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from consumers.detectors import DetectorObserver
from consumers.errors import DeadLetterError
from service.wiring.monitoring import (
    build_dead_letters,
    build_detectors,
    build_performance_evaluator,
)
from tests.unit.service.test_config import load, mutated


def test_detectors_run_for_the_models_that_have_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="service.wiring.monitoring"):
        assert build_detectors(load(tmp_path, mutated("models.fraud.labels", {}))) is None
    assert "model fraud: no concept-drift detectors" in caplog.text
    cfg = load(tmp_path, mutated("models.fraud.labels", {"task": "classification"}))
    observer = build_detectors(cfg)
    assert isinstance(observer, DetectorObserver)
    assert observer.specs["fraud"].detectors == ("rule",)


def test_the_window_verdict_knows_whether_the_rule_watches(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    cfg = load(tmp_path, mutated("models.fraud.labels", {"task": "classification"}))
    judging = build_performance_evaluator(cfg, sessions, None)._models["fraud"]
    assert judging.alarm_rule is True
    raw = mutated("models.fraud.labels", {"task": "classification", "detectors": ["ddm"]})
    judging = build_performance_evaluator(load(tmp_path, raw), sessions, None)._models["fraud"]
    assert judging.alarm_rule is False


def test_a_dead_letter_producer_that_cannot_be_created_is_a_retriable_error(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    raw = mutated("kafka.bootstrap_servers", [f"127.0.0.1:{port}"])
    del raw["kafka"]["api_version"]  # probing makes the constructor itself reach a broker
    raw["kafka"]["producer"] = {"bootstrap_timeout_ms": 300}
    dead_letters = build_dead_letters(load(tmp_path, raw))
    dead_letters.publish(b"k", b"v")  # never blocks on creating the producer
    for _ in range(2):  # the loop retries the flush, and so creating the producer
        with pytest.raises(DeadLetterError) as info:
            dead_letters.confirm(timeout=1.0)
        assert info.value.retriable
