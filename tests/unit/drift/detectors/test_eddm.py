"""EDDM: delay and false alarms as documented, exact resumption, 0/1 input only."""

from __future__ import annotations

import numpy as np
import pytest

from drift.detectors import EDDM
from tests.unit.drift.detectors.streams import (
    assert_resumes,
    change,
    delay_summary,
    drifts,
    false_alarms,
)


def test_detects_a_doubled_error_rate_within_the_documented_delay() -> None:
    assert delay_summary(EDDM) == (277, 874)


def test_false_alarms_on_stationary_errors_are_the_documented_ones() -> None:
    found = false_alarms(EDDM)
    assert [len(seed) for seed in found] == [2, 2, 18, 2, 2]
    assert max(max(seed) for seed in found) == 11_712


def test_mean_distance_counts_events_between_errors() -> None:
    eddm = EDDM()
    for x in [0, 0, 1, 0, 1, 0, 0, 0, 0, 1]:
        eddm.update(x)
    # Errors at events 3, 5 and 10: distances 3 (from the start), 2 and 5.
    assert eddm.mean_distance == pytest.approx(10 / 3)


def test_drifts_only_on_errors_and_keeps_warning_between_them() -> None:
    stream = change(4, pre=2_000, post=2_000, after=0.4)
    eddm = EDDM()
    warning = False
    for i, x in enumerate(stream):
        eddm.update(x)
        if x == 0:
            assert not eddm.drift_detected
            assert eddm.warning_detected == warning, f"warning changed on a hit at {i}"
        warning = eddm.warning_detected


def test_warns_before_it_drifts() -> None:
    eddm = EDDM()
    states = []
    for x in change(0, pre=2_000, post=1_000, after=0.4):
        eddm.update(x)
        states.append((eddm.warning_detected, eddm.drift_detected))
    first_drift = states.index((False, True))
    assert (True, False) in states[:first_drift]


def test_resumes_exactly_from_json_state() -> None:
    stream = change(3, pre=2_000, post=2_000, after=0.3)
    found = assert_resumes(EDDM, EDDM.from_state, stream, 1_800)
    assert min(found) < 1_800 < max(found)


@pytest.mark.parametrize("x", [0, 1, True, False, 0.0, 1.0, np.int64(1), np.float64(0.0)])
def test_accepts_zero_one_errors(x: float) -> None:
    EDDM().update(x)


@pytest.mark.parametrize("x", [0.5, 2, -1, float("nan"), float("inf")])
def test_rejects_anything_but_zero_or_one(x: float) -> None:
    eddm = EDDM()
    with pytest.raises(ValueError, match="0/1"):
        eddm.update(x)
    assert eddm.n == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"min_errors": 1}, {"alpha": 0.9, "beta": 0.9}, {"alpha": 1.0}, {"beta": 0.0}],
)
def test_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EDDM(**kwargs)  # type: ignore[arg-type]


def test_reset_forgets_everything() -> None:
    eddm = EDDM()
    drifts(eddm, change(1, pre=1_000, post=1_000, after=0.6))
    eddm.reset()
    assert eddm.to_state() == EDDM().to_state()


def test_from_state_rejects_an_incomplete_state() -> None:
    state = EDDM().to_state()
    del state["max"]
    with pytest.raises(ValueError, match="not an EDDM state"):
        EDDM.from_state(state)
