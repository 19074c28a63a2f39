"""ADWIN: delay and false alarms as documented, the histogram against the raw stream,
exact resumption, input in [0, 1]."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drift.detectors import ADWIN
from tests.unit.drift.detectors.streams import (
    assert_resumes,
    change,
    delay_summary,
    drifts,
    false_alarms,
)


def losses(seed: int, pre: int = 2_000, post: int = 2_000) -> list[float]:
    """Real-valued losses in [0, 1] whose mean rises from 0.2 to 0.4 at ``pre``."""
    rng = np.random.default_rng(seed)
    values: list[float] = np.concatenate([rng.beta(2, 8, pre), rng.beta(4, 6, post)]).tolist()
    return values


def eps_cut(n0: int, n1: int, variance: float, width: int, delta: float = 0.002) -> float:
    log_term = math.log(2 * math.log(width) / delta)
    inv_m = 1 / n0 + 1 / n1
    return math.sqrt(2 * inv_m * variance * log_term) + 2 / 3 * inv_m * log_term


def buckets(adwin: ADWIN) -> list[tuple[int, float, float]]:
    """(size, sum, sum of squares) of every bucket, oldest first."""
    state = adwin.to_state()
    rows = list(enumerate(zip(state["sums"], state["squares"], strict=True)))
    return [
        (1 << row, s, q)
        for row, (sums, squares) in reversed(rows)
        for s, q in zip(sums, squares, strict=True)
    ]


def test_detects_a_doubled_error_rate_within_the_documented_delay() -> None:
    assert delay_summary(ADWIN) == (312, 600)


def test_no_false_alarm_on_stationary_errors() -> None:
    assert false_alarms(ADWIN) == [[], [], [], [], []]


def test_window_is_the_latest_values_in_exponential_buckets() -> None:
    stream = losses(5)
    values = np.array(stream)
    adwin = ADWIN()
    for i, x in enumerate(stream):
        adwin.update(x)
        window = values[i + 1 - adwin.width : i + 1]
        assert adwin.estimation == pytest.approx(window.mean(), abs=1e-12)
        assert adwin.variance == pytest.approx(window.var(), abs=1e-12)
        if i % 97:
            continue
        start = 0
        for size, total, squares in buckets(adwin):
            part = window[start : start + size]
            assert (total, squares) == pytest.approx((part.sum(), (part**2).sum()), abs=1e-9)
            start += size
        assert start == adwin.width
        assert all(len(row) <= adwin.max_buckets for row in adwin.to_state()["sums"])


def test_a_cut_is_significant_and_leaves_no_significant_split() -> None:
    stream = losses(5)
    values = np.array(stream)
    adwin = ADWIN()
    cuts = 0
    for i, x in enumerate(stream):
        width_before = adwin.width + 1
        adwin.update(x)
        if adwin.n % adwin.clock:
            continue
        window = values[i + 1 - adwin.width : i + 1]
        sizes = [size for size, _, _ in buckets(adwin)]
        for n0 in np.cumsum(sizes)[:-1].tolist():
            n1 = adwin.width - n0
            if min(n0, n1) < adwin.min_window_length:
                continue
            gap = abs(window[:n0].mean() - window[n0:].mean())
            assert gap <= eps_cut(n0, n1, window.var(), adwin.width), f"kept a change at {i}"
        if adwin.drift_detected:
            cuts += 1
            split = adwin.last_split
            assert split is not None
            assert split.n_before + split.n_after == width_before
            before = values[i + 1 - width_before : i + 1]
            assert abs(split.mean_after - split.mean_before) > eps_cut(
                split.n_before, split.n_after, before.var(), width_before
            )
    assert cuts >= 1


def test_resumes_exactly_from_json_state() -> None:
    found = assert_resumes(ADWIN, ADWIN.from_state, losses(7), 2_090)
    assert min(found) < 2_090 < max(found)


@pytest.mark.parametrize("x", [0, 1, 0.37, True, np.float64(0.5), np.int64(1)])
def test_accepts_values_in_the_unit_interval(x: float) -> None:
    adwin = ADWIN()
    adwin.update(x)
    assert adwin.estimation == float(x)


@pytest.mark.parametrize("x", [1.5, -0.1, float("nan"), float("inf")])
def test_rejects_values_outside_the_unit_interval(x: float) -> None:
    adwin = ADWIN()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adwin.update(x)
    assert adwin.n == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"delta": 0.0}, {"delta": 1.0}, {"clock": 0}, {"max_buckets": 1}, {"min_window_length": 0}],
)
def test_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ADWIN(**kwargs)  # type: ignore[arg-type]


def test_reset_forgets_everything() -> None:
    adwin = ADWIN()
    drifts(adwin, change(1, pre=1_000, post=1_000, after=0.6))
    adwin.reset()
    assert adwin.to_state() == ADWIN().to_state()


def test_from_state_rejects_bad_states() -> None:
    state = ADWIN().to_state()
    del state["sums"]
    with pytest.raises(ValueError, match="not an ADWIN state"):
        ADWIN.from_state(state)
    adwin = ADWIN()
    for x in losses(1, pre=100, post=0):
        adwin.update(x)
    state = adwin.to_state()
    state["width"] += 1
    with pytest.raises(ValueError, match="do not match"):
        ADWIN.from_state(state)
