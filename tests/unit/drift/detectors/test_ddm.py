"""DDM: delay and false alarms as documented, exact resumption, 0/1 input only."""

from __future__ import annotations

import numpy as np
import pytest

from drift.detectors import DDM
from tests.unit.drift.detectors.streams import (
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


def test_warns_before_it_drifts() -> None:
    ddm = DDM()
    warned_at = drifted_at = None
    for i, x in enumerate(change(0)):
        ddm.update(x)
        if i >= 5_000 and ddm.warning_detected and warned_at is None:
            warned_at = i
        if i >= 5_000 and ddm.drift_detected:
            drifted_at = i
            break
    assert warned_at is not None and drifted_at is not None
    assert warned_at < drifted_at


def test_no_drift_while_no_error_has_been_seen() -> None:
    # The paper would take p = s = 0 as the minimum and call the first error a drift.
    ddm = DDM()
    assert drifts(ddm, [0] * 100 + [1] + [0] * 100 + [1]) == []
    assert ddm.error_rate == pytest.approx(2 / 202)


def test_restarts_after_a_drift_but_keeps_counting_events() -> None:
    ddm = DDM()
    found = drifts(ddm, change(0, pre=2_000, post=2_000, after=0.5))
    assert found
    assert ddm.n == 4_000
    assert ddm.to_state()["count"] == 4_000 - 1 - found[-1]


def test_resumes_exactly_from_json_state() -> None:
    found = assert_resumes(DDM, DDM.from_state, change(3, pre=2_000, post=2_000, after=0.3), 2_050)
    assert min(found) < 2_050 < max(found)


@pytest.mark.parametrize("x", [0, 1, True, False, 0.0, 1.0, np.int64(1), np.float64(0.0)])
def test_accepts_zero_one_errors(x: float) -> None:
    DDM().update(x)


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
