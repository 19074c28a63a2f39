"""The detector registry, the shared shape and JSON-safe state of every detector."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from drift.detectors import DETECTORS, AlarmRule, Detector, detector_from_state
from tests.unit.drift.detectors.streams import change, drifts

MAKERS: dict[str, Callable[[], Detector]] = {**DETECTORS, "rule": AlarmRule}


def json_safe(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(json_safe(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_safe(v) for k, v in value.items())
    return False


def test_registry_names() -> None:
    assert sorted(DETECTORS) == ["adwin", "ddm", "eddm", "page_hinkley"]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_from_state_rebuilds_the_named_detector(name: str) -> None:
    detector = DETECTORS[name]()
    drifts(detector, change(2, pre=1_000, post=1_000, after=0.5))
    restored = detector_from_state(name, json.loads(json.dumps(detector.to_state())))
    assert type(restored) is type(detector)
    assert restored.to_state() == detector.to_state()


def test_detector_from_state_names_the_known_detectors() -> None:
    with pytest.raises(ValueError, match="unknown detector 'kswin'; known: adwin, ddm"):
        detector_from_state("kswin", {})


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_state_holds_only_json_values_and_every_detector_has_the_shape(name: str) -> None:
    detector: Detector = MAKERS[name]()
    assert (detector.n, detector.drift_detected, detector.warning_detected) == (0, False, False)
    assert json_safe(detector.to_state())
    found = drifts(detector, change(2, pre=1_000, post=1_000, after=0.5))
    assert found, "the stream should make every detector drift"
    assert detector.n == 2_000
    assert json_safe(detector.to_state())
    json.dumps(detector.to_state(), allow_nan=False)
