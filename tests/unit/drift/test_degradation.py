"""Degradation tests: error rates on seeded windows, detection power and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from drift.performance import ClassificationSketch, RegressionSketch
from drift.stats.degradation import DegradationVerdict, accuracy_drop, error_increase

WINDOWS = 500
N = 2000
REF_N = 5000
# One-sided at 0.05 over 500 windows: the binomial standard error is about 0.01,
# so a correct test stays below 0.07 with room to spare.
MAX_FALSE_RATE = 0.07


# -- accuracy ------------------------------------------------------------------


def test_accuracy_matches_the_textbook_formulas() -> None:
    p1, p2 = 0.9, 1740 / 2000
    pooled = (p1 * REF_N + 1740) / (REF_N + 2000)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / REF_N + 1 / 2000))
    v = accuracy_drop(0.9, REF_N, 1740, 2000)
    assert v.statistic == pytest.approx(z) and v.p_value == pytest.approx(stats.norm.sf(z))
    assert (v.metric, v.reference, v.current, v.n) == ("accuracy", 0.9, p2, 2000)

    z1 = (0.9 - p2) / math.sqrt(0.9 * 0.1 / 2000)
    v = accuracy_drop(0.9, None, 1740, 2000)
    assert v.statistic == pytest.approx(z1) and v.p_value == pytest.approx(stats.norm.sf(z1))
    assert v.degraded is True and "degraded" in v.reason


@pytest.mark.parametrize("reference_n", [None, REF_N])
def test_accuracy_rarely_flags_windows_from_the_reference_distribution(
    reference_n: int | None,
) -> None:
    rng = np.random.default_rng(2024)
    true_acc = 0.9
    correct = rng.binomial(N, true_acc, WINDOWS)
    refs = (
        np.full(WINDOWS, true_acc)
        if reference_n is None
        else rng.binomial(reference_n, true_acc, WINDOWS) / reference_n
    )
    flagged = [
        accuracy_drop(float(ref), reference_n, int(c), N).degraded
        for ref, c in zip(refs, correct, strict=True)
    ]
    assert None not in flagged
    assert np.mean(flagged) <= MAX_FALSE_RATE


def test_exact_size_of_the_one_sample_accuracy_test() -> None:
    # Independent of any sampling: the binomial mass of every window the test flags.
    k = np.arange(N + 1)
    flagged = np.array([accuracy_drop(0.9, None, int(c), N).degraded for c in k], dtype=bool)
    size = stats.binom.pmf(k[flagged], N, 0.9).sum()
    assert 0.04 < size <= 0.055


@pytest.mark.parametrize("reference_n", [None, REF_N])
def test_a_ten_point_accuracy_drop_is_detected(reference_n: int | None) -> None:
    rng = np.random.default_rng(5)
    for correct in rng.binomial(N, 0.8, 50):
        v = accuracy_drop(0.9, reference_n, int(correct), N)
        assert v.degraded is True and v.statistic is not None and v.statistic > 5


def test_a_better_window_is_never_degraded() -> None:
    v = accuracy_drop(0.8, REF_N, 1900, N)
    assert v.degraded is False and v.statistic is not None and v.statistic < 0
    assert v.p_value is not None and v.p_value > 0.99


def test_accuracy_from_a_classification_sketch() -> None:
    rng = np.random.default_rng(9)
    actual = rng.choice(["0", "1"], N)
    predicted = np.where(rng.random(N) < 0.75, actual, np.where(actual == "1", "0", "1"))
    sketch = ClassificationSketch()
    sketch.update(actual.tolist(), predicted.tolist())
    assert accuracy_drop(0.9, None, sketch.correct, sketch.count).degraded is True


@pytest.mark.parametrize("n", [0, 1, 199])
def test_too_few_labels_give_no_accuracy_verdict(n: int) -> None:
    v = accuracy_drop(0.9, REF_N, n // 2, n, min_labeled=200)
    assert v == DegradationVerdict(
        "accuracy", 0.9, n // 2 / n if n else None, n, None, None, None, v.reason
    )
    assert v.reason.startswith("insufficient labels")
    assert accuracy_drop(0.9, REF_N, 100, 200).degraded is True  # at the minimum it decides


def test_accuracy_without_spread() -> None:
    assert accuracy_drop(1.0, None, 2000, 2000).degraded is False
    v = accuracy_drop(1.0, None, 1999, 2000)
    assert (v.degraded, v.statistic, v.p_value) == (True, math.inf, 0.0)
    assert accuracy_drop(1.0, REF_N, 2000, 2000).p_value == 1.0
    assert accuracy_drop(0.0, None, 0, 2000).degraded is False


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1.2, None, 1, 2), {}),
        ((0.9, 0, 1, 2), {}),
        ((0.9, None, 3, 2), {}),
        ((0.9, None, -1, 2), {}),
        ((0.9, None, 1, 2), {"alpha": 0.0}),
        ((0.9, None, 1, 2), {"min_labeled": 0}),
    ],
)
def test_invalid_accuracy_arguments_raise(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        accuracy_drop(*args, **kwargs)


# -- squared error -------------------------------------------------------------


def _window(errors: np.ndarray) -> tuple[float, float, int]:
    sq = errors * errors
    return float(sq.sum()), float(np.dot(sq, sq)), int(errors.size)


def test_error_increase_matches_the_formula() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, REF_N) ** 2
    err = rng.normal(0, 1.1, N)
    sq = err**2
    z = (sq.mean() - ref.mean()) / math.sqrt(sq.var(ddof=1) / N + ref.var(ddof=1) / REF_N)
    v = error_increase(ref.mean(), REF_N, ref.var(ddof=1), *_window(err))
    assert v.statistic == pytest.approx(z, rel=1e-9)
    assert v.p_value == pytest.approx(stats.norm.sf(z), rel=1e-9)
    assert (v.metric, v.current) == ("mse", pytest.approx(sq.mean()))


@pytest.mark.parametrize("estimated_reference", [False, True])
def test_error_rarely_flags_windows_from_the_reference_distribution(
    estimated_reference: bool,
) -> None:
    rng = np.random.default_rng(77)
    errors = rng.normal(0, 1, (WINDOWS, N))
    flagged = []
    for row in errors:
        if estimated_reference:
            ref = rng.normal(0, 1, REF_N) ** 2
            v = error_increase(ref.mean(), REF_N, ref.var(ddof=1), *_window(row))
        else:
            v = error_increase(1.0, None, None, *_window(row))
        flagged.append(v.degraded)
    assert None not in flagged
    assert np.mean(flagged) <= MAX_FALSE_RATE


def test_a_twenty_percent_wider_error_is_detected() -> None:
    rng = np.random.default_rng(8)
    ref = rng.normal(0, 1, REF_N) ** 2
    for _ in range(50):
        window = _window(rng.normal(0, 1.2, N))  # MSE 1.44 against 1
        assert error_increase(ref.mean(), REF_N, ref.var(ddof=1), *window).degraded is True
        assert error_increase(1.0, None, None, *window).degraded is True


def test_smaller_errors_are_never_degraded() -> None:
    v = error_increase(1.0, None, None, *_window(np.random.default_rng(4).normal(0, 0.8, N)))
    assert v.degraded is False and v.statistic is not None and v.statistic < 0


def test_error_increase_from_a_regression_sketch() -> None:
    rng = np.random.default_rng(12)
    actual = rng.normal(50, 10, N)
    sketch = RegressionSketch()
    sketch.update(actual.tolist(), (actual + rng.normal(0.5, 1.0, N)).tolist())
    v = error_increase(1.0, None, None, sketch.sum_sq_err, sketch.sum_sq_sq_err, sketch.count)
    assert v.degraded is True and v.current == pytest.approx(sketch.mse)


def test_too_few_labels_give_no_error_verdict() -> None:
    v = error_increase(1.0, None, None, 150.0, 400.0, 150)
    assert (v.degraded, v.statistic, v.p_value, v.current) == (None, None, None, 1.0)
    assert error_increase(1.0, None, None, 0.0, 0.0, 0).current is None


def test_error_without_spread() -> None:
    # Every squared error exactly 4: certain excess over an exact reference of 1.
    v = error_increase(1.0, None, None, 4.0 * N, 16.0 * N, N)
    assert (v.degraded, v.p_value) == (True, 0.0)
    assert error_increase(4.0, None, None, 4.0 * N, 16.0 * N, N).degraded is False


@pytest.mark.parametrize(
    ("reference", "kwargs"),
    [
        ((-1.0, None, None), {}),
        ((math.nan, None, None), {}),
        ((1.0, 100, None), {}),
        ((1.0, None, 2.0), {}),
        ((1.0, 1, 2.0), {}),
        ((1.0, 100, -2.0), {}),
        ((1.0, None, None), {"alpha": 1.0}),
    ],
)
def test_invalid_error_arguments_raise(reference: tuple, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        error_increase(*reference, 300.0, 900.0, 300, **kwargs)
