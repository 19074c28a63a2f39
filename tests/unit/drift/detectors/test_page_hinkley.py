"""Page-Hinkley: delay and false alarms as documented, the three modes, exact
resumption, any finite input."""

from __future__ import annotations

import numpy as np
import pytest

from drift.detectors import PageHinkley
from tests.unit.drift.detectors.streams import (
    assert_resumes,
    change,
    delay_summary,
    drifts,
    false_alarms,
)


def up_then_down(seed: int = 11) -> list[int]:
    """Errors at 10 %, then 40 % from event 1,500, then 10 % again from event 3,000."""
    rng = np.random.default_rng(seed)
    rates = [0.1] * 1_500 + [0.4] * 1_500 + [0.1] * 1_500
    errors: list[int] = (rng.random(len(rates)) < np.array(rates)).astype(np.int64).tolist()
    return errors


def test_detects_a_doubled_error_rate_within_the_documented_delay() -> None:
    assert delay_summary(PageHinkley) == (470.5, 736)


def test_false_alarms_on_stationary_errors_are_the_documented_ones() -> None:
    found = false_alarms(PageHinkley)
    assert [len(seed) for seed in found] == [2, 2, 3, 2, 2]
    # Long after the warm-up: they come from the fading of the sum, not from young statistics.
    assert min(min(seed) for seed in found) == 9_022


@pytest.mark.parametrize(
    ("mode", "expected"), [("up", [1680]), ("down", [3310]), ("both", [1680, 3137])]
)
def test_mode_picks_the_direction(mode: str, expected: list[int]) -> None:
    assert drifts(PageHinkley(mode=mode), up_then_down()) == expected  # type: ignore[arg-type]


def test_takes_any_real_values() -> None:
    rng = np.random.default_rng(12)
    values: list[float] = np.concatenate(
        [rng.normal(100, 0.2, 1_000), rng.normal(101, 0.2, 1_000)]
    ).tolist()
    assert drifts(PageHinkley(), values) == [1048]
    assert drifts(PageHinkley(mode="down"), values[::-1]) == [1051]


def test_restarts_after_a_drift_but_keeps_counting_events() -> None:
    ph = PageHinkley()
    assert drifts(ph, up_then_down()) == [1680]
    assert ph.n == 4_500
    assert ph.to_state()["count"] == 4_500 - 1 - 1680


def test_resumes_exactly_from_json_state() -> None:
    found = assert_resumes(
        lambda: PageHinkley(mode="both"), PageHinkley.from_state, up_then_down(), 2_500
    )
    assert found == [1680, 3137]


@pytest.mark.parametrize("x", [float("nan"), float("inf"), float("-inf")])
def test_rejects_values_that_are_not_finite(x: float) -> None:
    ph = PageHinkley()
    with pytest.raises(ValueError, match="finite"):
        ph.update(x)
    assert ph.n == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_instances": 0},
        {"delta": -0.1},
        {"threshold": 0.0},
        {"alpha": 0.0},
        {"alpha": 1.01},
        {"mode": "sideways"},
    ],
)
def test_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PageHinkley(**kwargs)  # type: ignore[arg-type]


def test_reset_forgets_everything() -> None:
    ph = PageHinkley(mode="both")
    drifts(ph, change(1, pre=1_000, post=1_000, after=0.6))
    ph.reset()
    assert ph.to_state() == PageHinkley(mode="both").to_state()


def test_from_state_rejects_bad_states() -> None:
    state = PageHinkley().to_state()
    del state["sum_up"]
    with pytest.raises(ValueError, match="not a PageHinkley state"):
        PageHinkley.from_state(state)
    with pytest.raises(ValueError, match="mode"):
        PageHinkley.from_state({**PageHinkley().to_state(), "mode": "sideways"})
