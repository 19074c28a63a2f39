"""DDM: delay and false alarms as documented, exact resumption, 0/1 input only."""

from __future__ import annotations

import numpy as np
import pytest

from drift.detectors import DDM
from tests.unit.drift.detectors.streams import (
    CHANGE_AT,
    assert_resumes,
    change,
    delay_summary,
    drifts,
    false_alarms,
)


def test_detects_a_doubled_error_rate_within_the_documented_delay() -> None:
    assert delay_summary(DDM) == (520, 4_633)


def test_false_alarms_on_stationary_errors_are_the_documented_ones() -> None:
    found = false_alarms(DDM)
    assert [len(seed) for seed in found] == [1, 2, 2, 1, 1]
    # All of them while the statistics are young.
    assert max(max(seed) for seed in found) == 2_317


def test_the_slowest_detection_is_the_documented_early_minimum() -> None:
    # Seed 18: the minimum p + s was set 95 events after a restart, putting the drift
    # level at 0.154 for a true error rate of 0.10, and held until the drift.
    ddm = DDM()
    restart = minimum_at = 0
    level = 0.0
    for i, x in enumerate(change(18)):
        before = ddm.to_state()["ps_min"]
        ddm.update(x)
        if ddm.drift_detected and i >= CHANGE_AT:
            break
        if ddm.drift_detected:
            restart = i + 1
        elif ddm.to_state()["ps_min"] != before:
            state = ddm.to_state()
            minimum_at, level = i + 1 - restart, state["p_min"] + 3.0 * state["s_min"]
    assert i - CHANGE_AT + 1 == 4_633
    assert minimum_at == 95
    assert round(level, 3) == 0.154


def test_warns_before_it_drifts() -> None:
    ddm = DDM()
    onsets, warning = [], False
    for i, x in enumerate(change(0)):
        ddm.update(x)
        if ddm.warning_detected and not warning:
            onsets.append(i)
        warning = ddm.warning_detected
        if i >= CHANGE_AT and ddm.drift_detected:
            break
    # In the warning zone from just before the change (noise) until the drift at 5,367.
    assert (onsets[-1], i) == (4_948, 5_367)


def test_no_drift_while_no_error_has_been_seen() -> None:
    # The paper would take p = s = 0 as the minimum and call the first error a drift.
    ddm = DDM()
    assert drifts(ddm, [0] * 100 + [1] + [0] * 100 + [1]) == []
    assert ddm.error_rate == pytest.approx(2 / 202)


def test_restarts_after_a_drift_but_keeps_counting_events() -> None:
    ddm = DDM()
    assert drifts(ddm, change(0, pre=2_000, post=2_000, after=0.5)) == [2_008]
    assert ddm.n == 4_000
    assert ddm.to_state()["count"] == 4_000 - 1 - 2_008


def test_resumes_exactly_from_json_state() -> None:
    found = assert_resumes(DDM, DDM.from_state, change(3, pre=2_000, post=2_000, after=0.3), 2_050)
    assert found == [545, 2_088]


@pytest.mark.parametrize("x", [0, 1, True, False, 0.0, 1.0, np.int64(1), np.float64(0.0)])
def test_accepts_zero_one_errors(x: float) -> None:
    ddm = DDM()
    ddm.update(x)
    assert (ddm.n, ddm.error_rate) == (1, float(x))


@pytest.mark.parametrize("x", [0.5, 2, -1, float("nan"), float("inf")])
def test_rejects_anything_but_zero_or_one(x: float) -> None:
    ddm = DDM()
    with pytest.raises(ValueError, match="0/1"):
        ddm.update(x)
    assert ddm.n == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"min_instances": 0}, {"warning_level": 0.0}, {"warning_level": 3.5, "drift_level": 3.0}],
)
def test_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DDM(**kwargs)  # type: ignore[arg-type]


def test_reset_forgets_everything() -> None:
    ddm = DDM(min_instances=10)
    drifts(ddm, change(1, pre=500, post=500, after=0.6))
    ddm.reset()
    assert ddm.to_state() == DDM(min_instances=10).to_state()


def test_from_state_rejects_an_incomplete_state() -> None:
    state = DDM().to_state()
    del state["errors"]
    with pytest.raises(ValueError, match="not a DDM state"):
        DDM.from_state(state)
