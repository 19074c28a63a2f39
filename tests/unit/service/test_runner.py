"""The service's wiring: which streaming detectors run."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.detectors import DetectorObserver
from service.runner import build_detectors
from tests.unit.service.test_config import load, mutated


def test_detectors_run_for_the_models_that_have_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="service.runner"):
        assert build_detectors(load(tmp_path)) is None
    assert "model fraud: no concept-drift detectors" in caplog.text
    cfg = load(tmp_path, mutated("models.fraud.labels", {"task": "classification"}))
    observer = build_detectors(cfg)
    assert isinstance(observer, DetectorObserver)
    assert observer.specs["fraud"].detectors == ("rule",)
