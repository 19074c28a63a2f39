"""EDDM: delay and false alarms as documented, exact resumption, 0/1 input only."""

from __future__ import annotations

import numpy as np
import pytest

from drift.detectors import EDDM
from tests.unit.drift.detectors.streams import (
    STATIONARY_EVENTS,
    STATIONARY_SEEDS,
    assert_resumes,
    bernoulli,
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


def test_false_alarms_follow_a_maximum_taken_from_young_statistics() -> None:
    # Errors since the (re)start when the maximum last rose, before each false alarm.
    risen_at = []
    for seed in STATIONARY_SEEDS:
        eddm, last = EDDM(), 0
        for x in bernoulli(seed, STATIONARY_EVENTS, 0.1):
            before = eddm.to_state()["max"]
            eddm.update(x)
            if eddm.drift_detected:
                risen_at.append(last)
            elif eddm.to_state()["max"] != before:
                last = eddm.to_state()["errors"]
    assert len(risen_at) == 26
    assert max(risen_at) == 99
    assert sorted(risen_at)[len(risen_at) // 2] == 34


def test_mean_distance_counts_events_between_errors() -> None:
    eddm = EDDM()
    for x in [0, 0, 1, 0, 1, 0, 0, 0, 0, 1]:
        eddm.update(x)
    # Errors at events 3, 5 and 10: distances 3 (from the start), 2 and 5.
    assert eddm.mean_distance == pytest.approx(10 / 3)


def test_drifts_only_on_errors_and_keeps_warning_between_them() -> None:
    stream = change(4, pre=2_000, post=2_000, after=0.4)
    eddm = EDDM()
    warning, found, switches = False, [], 0
    for i, x in enumerate(stream):
        eddm.update(x)
        if x == 0:
            assert not eddm.drift_detected
            assert eddm.warning_detected == warning, f"warning changed on a hit at {i}"
        switches += eddm.warning_detected != warning
        warning = eddm.warning_detected
        if eddm.drift_detected:
            found.append(i)
    assert found == [517, 1_350, 2_047]
    assert switches == 45


def test_warns_before_it_drifts() -> None:
    eddm = EDDM()
    states = []
    for x in change(0, pre=2_000, post=1_000, after=0.4):
        eddm.update(x)
        states.append((eddm.warning_detected, eddm.drift_detected))
    assert (states.index((True, False)), states.index((False, True))) == (403, 1_220)


def test_resumes_exactly_from_json_state() -> None:
    stream = change(3, pre=2_000, post=2_000, after=0.3)
    assert assert_resumes(EDDM, EDDM.from_state, stream, 1_800) == [538, 1_498, 2_021]


@pytest.mark.parametrize("x", [0, 1, True, False, 0.0, 1.0, np.int64(1), np.float64(0.0)])
def test_accepts_zero_one_errors(x: float) -> None:
    eddm = EDDM()
    eddm.update(x)
    # The first error's distance is counted from the start of the stream.
    assert (eddm.n, eddm.mean_distance) == (1, float(x))


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
