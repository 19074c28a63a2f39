"""The alarm rule: silent on stationary errors, one prompt alarm per rise, none on a
fall or on a rise smaller than ``min_increase``, exact resumption."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from drift.detectors import ADWIN, AlarmRule
from tests.unit.drift.detectors.streams import (
    CHANGE_AT,
    DELAY_SEEDS,
    STATIONARY_EVENTS,
    assert_resumes,
    bernoulli,
    change,
    drifts,
)


def alarms_and_cuts(rule: AlarmRule, stream: list[int]) -> tuple[list[int], list[int]]:
    """Indices of the rule's alarms and of its ADWIN's cuts."""
    alarms, cuts = [], []
    for i, x in enumerate(stream):
        rule.update(x)
        if rule.drift_detected:
            alarms.append(i)
        if rule.adwin.drift_detected:
            cuts.append(i)
    return alarms, cuts


def staircase(seed: int = 21) -> list[int]:
    """Errors at 10 %, 20 % from event 2,000 and 35 % from event 4,000."""
    rates = np.repeat([0.1, 0.2, 0.35], 2_000)
    rng = np.random.default_rng(seed)
    errors: list[int] = (rng.random(rates.size) < rates).astype(np.int64).tolist()
    return errors


@pytest.mark.parametrize("seed", range(10))
def test_no_alarm_on_stationary_errors(seed: int) -> None:
    alarms, cuts = alarms_and_cuts(AlarmRule(), bernoulli(seed, STATIONARY_EVENTS, 0.1))
    assert (alarms, cuts) == ([], [])


def test_one_alarm_per_doubling_of_the_error_rate_within_the_documented_delay() -> None:
    found = [drifts(AlarmRule(), change(seed)) for seed in DELAY_SEEDS]
    assert all(len(alarms) == 1 and alarms[0] >= CHANGE_AT for alarms in found), found
    delays = [alarms[0] - CHANGE_AT + 1 for alarms in found]
    assert (statistics.median(delays), max(delays)) == (312, 600)
    assert max(delays) <= 2_000


def test_a_falling_error_rate_is_cut_but_raises_no_alarm() -> None:
    alarms, cuts = alarms_and_cuts(AlarmRule(), change(0, before=0.2, after=0.1))
    assert cuts == [5343, 5407, 5439, 5471]
    assert alarms == []


def test_a_rise_below_min_increase_raises_no_alarm() -> None:
    rule = AlarmRule(min_increase=0.15)
    alarms, cuts = alarms_and_cuts(rule, change(0))
    assert cuts == [5535, 5567, 5791, 6047]
    assert alarms == []
    assert rule.baseline is None


def test_each_step_of_a_staircase_is_one_alarm_measured_from_the_last() -> None:
    rule = AlarmRule()
    levels = []
    for i, x in enumerate(staircase()):
        rule.update(x)
        if rule.drift_detected:
            assert rule.baseline is not None and rule.alarm_rate is not None
            levels.append((i, round(rule.baseline, 2), round(rule.alarm_rate, 2)))
            assert rule.error_rate == 0.0
    assert levels == [(2271, 0.1, 0.24), (4159, 0.19, 0.36)]


def test_resumes_exactly_from_json_state() -> None:
    found = assert_resumes(
        lambda: AlarmRule(adwin=ADWIN(delta=0.01)), AlarmRule.from_state, staircase(), 3_000
    )
    assert min(found) < 3_000 < max(found)
    assert AlarmRule.from_state(AlarmRule(adwin=ADWIN(delta=0.01)).to_state()).adwin.delta == 0.01


@pytest.mark.parametrize("x", [1.5, -0.1, float("nan")])
def test_rejects_values_outside_the_unit_interval(x: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        AlarmRule().update(x)


@pytest.mark.parametrize("min_increase", [0.0, -0.01, 1.5])
def test_rejects_bad_parameters(min_increase: float) -> None:
    with pytest.raises(ValueError, match="min_increase"):
        AlarmRule(min_increase)


def test_reset_forgets_everything() -> None:
    rule = AlarmRule()
    drifts(rule, staircase())
    rule.reset()
    assert rule.to_state() == AlarmRule().to_state()


def test_from_state_rejects_an_incomplete_state() -> None:
    state = AlarmRule().to_state()
    del state["adwin"]["sums"]
    with pytest.raises(ValueError, match="not an ADWIN state"):
        AlarmRule.from_state(state)
    del state["adwin"]
    with pytest.raises(ValueError, match="not an AlarmRule state"):
        AlarmRule.from_state(state)
