"""Sample-ratio mismatch and prediction divergence of a canary (latency: test_canary_latency)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats
from scipy.spatial import distance

from drift.canary import (
    Check,
    Outcome,
    js_distance,
    null_distance,
    prediction_divergence,
    sample_ratio,
    srm_p_value,
)
from drift.performance import ClassificationSketch

REPS = 20_000


# -- Check -------------------------------------------------------------------------------


def test_a_check_refuses_nan_and_cannot_be_changed_through_its_details() -> None:
    with pytest.raises(ValueError, match="carries a NaN"):
        Check("x", Outcome.PASS, math.nan, 0.1, 1, 1, "r")
    with pytest.raises(ValueError, match="carries a NaN"):
        Check("x", Outcome.PASS, 0.0, 0.1, 1, 1, "r", {"lower": math.nan})
    check = Check("x", Outcome.PASS, 0.0, 0.1, 1, 1, "r", {"lower": 0.0})
    with pytest.raises(TypeError):
        check.details["lower"] = 1.0  # type: ignore[index]


# -- sample-ratio mismatch ---------------------------------------------------------------


@pytest.mark.parametrize("share", [0.05, 0.25, 0.5])
def test_srm_false_alarm_rate_at_the_right_split_is_at_most_alpha(share: float) -> None:
    rng = np.random.default_rng(11)
    total, alpha = 10_000, 0.001
    canary = rng.binomial(total, share, REPS)
    _, p = srm_p_value(total - canary, canary, share)
    rate = float(np.mean(p < alpha))
    # Measured: 0.00145 (0.05), 0.0011 (0.25), 0.00125 (0.5); standard error 0.00022.
    assert rate <= alpha + 3 * math.sqrt(alpha / REPS)
    # Without Monte Carlo noise: the exact size, summed over every binomial outcome.
    every = np.arange(total + 1)
    _, p_all = srm_p_value(total - every, every, share)
    size = float(stats.binom.pmf(every, total, share)[p_all < alpha].sum())
    # Measured: 0.00105 (0.05), 0.000999 (0.25), 0.00100 (0.5). Chi-square is approximate:
    # a little above alpha when the canary's share is small (0.00121 at 1,000 events).
    assert size <= 1.05 * alpha
    picked = [sample_ratio(int(total - c), int(c), share).outcome for c in canary[:200]]
    assert picked.count(Outcome.FAIL) == int(np.sum(p[:200] < alpha))


def test_srm_detects_a_50_50_split_reported_as_45_55() -> None:
    check = sample_ratio(5500, 4500, 0.5)
    assert check.outcome is Outcome.FAIL
    assert check.value == pytest.approx(stats.chisquare([4500, 5500]).pvalue)
    assert check.details["observed_share"] == 0.45 and check.details["expected_share"] == 0.5
    assert check.details["chi_square"] == pytest.approx(100.0)
    assert "canary share 0.4500 (4500/10000) vs expected 0.5000" in check.reason
    # Over seeded splits drawn at 45 %, the test misses none.
    rng = np.random.default_rng(12)
    canary = rng.binomial(10_000, 0.45, 2000)
    _, p = srm_p_value(10_000 - canary, canary, 0.5)
    assert bool(np.all(p < 0.001))


def test_srm_is_inconclusive_without_enough_expected_events() -> None:
    assert sample_ratio(0, 0, 0.5).outcome is Outcome.INCONCLUSIVE
    few = sample_ratio(95, 4, 0.05)  # expects 4.95 canary events
    assert few.outcome is Outcome.INCONCLUSIVE and few.value is None
    assert "expect 4.95 canary and 94.05 stable" in few.reason
    # At weight 0 or 1 there is no split to test, whatever arrived.
    assert sample_ratio(0, 1000, 1.0).outcome is Outcome.INCONCLUSIVE
    assert sample_ratio(1000, 5, 0.0).outcome is Outcome.INCONCLUSIVE
    assert sample_ratio(95, 5, 0.05).outcome is Outcome.PASS


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((10, 10, 1.5), {}, r"canary_share must be in \[0, 1\], got 1.5"),
        ((-1, 10, 0.5), {}, "stable_count must be >= 0, got -1"),
        ((10, 10, 0.5), {"alpha": 0.0}, r"alpha must be in \(0, 1\)"),
        ((10, 10, 0.5), {"min_expected": 0.0}, "min_expected must be finite and > 0"),
    ],
)
def test_srm_refuses_invalid_arguments(
    args: tuple[int, int, float], kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sample_ratio(*args, **kwargs)


# -- prediction divergence ---------------------------------------------------------------


def test_js_distance_is_zero_one_symmetric_and_scipy_base_2() -> None:
    rng = np.random.default_rng(13)
    a, b = rng.integers(0, 50, 12), rng.integers(0, 50, 12)
    assert js_distance(a, a) == 0.0 and js_distance(3 * a, a) == 0.0
    assert js_distance([4, 0, 0], [0, 0, 9]) == 1.0
    assert js_distance(a, b) == js_distance(b, a)
    assert js_distance(a, b) == pytest.approx(distance.jensenshannon(a, b, base=2))
    mapped = js_distance({"x": 3, "y": 1}, {"y": 1, "z": 2})
    assert mapped == pytest.approx(distance.jensenshannon([3, 1, 0], [0, 1, 2], base=2))


def test_js_distance_of_the_window_sketches_counts() -> None:
    canary, stable = ClassificationSketch(), ClassificationSketch()
    canary.update(["1", "0", "1", "1"], ["1", "0", "0", "1"])
    stable.update(["1", "0", "1", "0"], ["1", "0", "1", "0"])
    predicted = [{p: 0 for p in "01"} for _ in range(2)]
    for counts, sketch in zip(predicted, (canary, stable), strict=True):
        for (_, p), n in sketch.confusion.items():
            counts[p] += n
    assert js_distance(predicted[0], predicted[1]) == 0.0


def test_identical_versions_fail_at_most_alpha_once_the_noise_floor_allows() -> None:
    rng = np.random.default_rng(14)
    bins, n, alpha = 10, 1000, 0.01
    p = rng.dirichlet(np.ones(bins))
    canary, stable = rng.multinomial(n, p, 4000), rng.multinomial(n, p, 4000)
    d = distance.jensenshannon(canary, stable, base=2, axis=1)
    floor = null_distance(n, n, bins, alpha)
    # Measured: 0.0105 over 4,000 pairs (standard error 0.0016) at floor 0.088.
    assert float(np.mean(d > floor)) <= alpha + 3 * math.sqrt(alpha / 4000)
    pairs = zip(canary[:300], stable[:300], strict=True)
    outcomes = [prediction_divergence(c, s).outcome for c, s in pairs]
    assert outcomes.count(Outcome.FAIL) == int(np.sum(d[:300] > 0.1))
    assert Outcome.INCONCLUSIVE not in outcomes


def test_divergence_fails_a_shifted_canary_and_holds_when_too_small() -> None:
    shifted = prediction_divergence([30, 70], [500, 500], threshold=0.1, min_n=1000)
    assert shifted.outcome is Outcome.INCONCLUSIVE and shifted.value is None
    check = prediction_divergence([3000, 7000], [5000, 5000])
    assert check.outcome is Outcome.FAIL
    assert check.value == pytest.approx(distance.jensenshannon([3, 7], [5, 5], base=2))
    # 20 bins at 1,000 events each: identical versions would exceed 0.114 there 1 % of
    # the time, so the check compares on the 14 merged bins whose floor (0.0999) allows 0.1.
    flat = np.full(20, 50)
    merged = prediction_divergence(flat, flat)
    assert merged.outcome is Outcome.PASS and merged.details["bins"] == 14
    assert "over 14 bins (merged from 20)," in merged.reason
    # Under what even two bins allow, it holds.
    noisy = prediction_divergence(flat, flat, threshold=0.03)
    assert noisy.outcome is Outcome.INCONCLUSIVE and noisy.value == 0.0
    assert "identical versions exceed 0.0489 with probability 0.01" in noisy.reason
    assert prediction_divergence(flat * 4, flat * 4).outcome is Outcome.PASS


def _profile_bins(shift: float) -> npt.NDArray[np.float64]:
    """A normal distribution of predictions, moved by ``shift``, over 500 bins."""
    shares = np.diff(stats.norm.cdf(np.linspace(-4.0, 4.0, 501), shift, 1.0))
    return np.asarray(shares / shares.sum(), dtype=np.float64)


def test_identical_versions_on_a_profiles_500_bins_fail_at_most_alpha_at_a_steps_size() -> None:
    # 300 canary and 3,000 stable predictions over a profile's 500 bins: most bins hold an
    # event or two. Compared on them, identical versions measured a distance above 0.5 in
    # 15 % of pairs, and at the default 0.1 the check never reached a verdict.
    rng = np.random.default_rng(15)
    p = _profile_bins(0.0)
    pairs = [(rng.multinomial(300, p), rng.multinomial(3000, p)) for _ in range(1000)]
    for threshold in (0.1, 0.5):
        outcomes = [
            prediction_divergence(c, s, threshold=threshold, min_n=200).outcome for c, s in pairs
        ]
        assert Outcome.INCONCLUSIVE not in outcomes
        assert outcomes.count(Outcome.FAIL) / len(pairs) <= 0.01 + 3 * math.sqrt(0.01 / 1000)


def test_merged_bins_still_fail_a_canary_that_predicts_otherwise() -> None:
    rng = np.random.default_rng(16)
    stable = rng.multinomial(3000, _profile_bins(0.0))
    far = prediction_divergence(
        rng.multinomial(300, _profile_bins(2.0)), stable, threshold=0.5, min_n=200
    )
    assert far.outcome is Outcome.FAIL  # 0.69 apart on the 500 bins
    assert far.details["bins"] == 60 and far.details["bins_observed"] > 60
    near = prediction_divergence(rng.multinomial(300, _profile_bins(0.5)), stable, min_n=200)
    assert near.outcome is Outcome.FAIL  # 0.21 apart, above the default 0.1
    # Class labels have no order: the rarest of 100 classes share one bin.
    classes = {f"c{i}": 10 for i in range(100)}
    many = prediction_divergence(classes, classes)
    assert many.outcome is Outcome.PASS and many.details["bins"] == 14


def test_divergence_refuses_mismatched_or_invalid_histograms() -> None:
    with pytest.raises(ValueError, match="same bins"):
        js_distance([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="must be category counts, or both bin counts"):
        js_distance({"a": 1}, [1])
    with pytest.raises(ValueError, match="finite and >= 0"):
        js_distance([1, -1], [1, 1])
    with pytest.raises(ValueError, match="counts on both sides"):
        js_distance([0, 0], [1, 1])
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        prediction_divergence([1, 1], [1, 1], threshold=1.5)
    assert prediction_divergence([0, 0], [0, 0]).outcome is Outcome.INCONCLUSIVE
