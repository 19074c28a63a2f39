"""The latency check on sketches: its pass, fail and hold rates on seeded latencies."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from drift.canary import Outcome, latency_ratio, quantile_bounds
from drift.latency_sketch import LatencySketch

REPS = 200


def outcomes(n: int, factor: float, seed: int) -> Counter[str]:
    """Outcomes at the analysis' defaults (p95, max ratio 1.5, alpha 0.05, 200 values)
    of a canary ``factor`` times as slow as stable, ``n`` lognormal latencies each."""
    rng = np.random.default_rng(seed)
    seen: Counter[str] = Counter()
    for _ in range(REPS):
        stable = LatencySketch.of(rng.lognormal(1.5, 0.5, n))
        canary = LatencySketch.of(factor * rng.lognormal(1.5, 0.5, n))
        seen[str(latency_ratio(canary, stable).outcome)] += 1
    return seen


def test_equal_latencies_pass_and_never_fail() -> None:
    assert outcomes(1000, 1.0, seed=1) == {"pass": 200}
    small = outcomes(200, 1.0, seed=2)
    assert small["fail"] == 0 and small["pass"] == 124


def test_a_canary_twice_as_slow_at_p95_fails() -> None:
    assert outcomes(2000, 2.0, seed=3) == {"fail": 200}
    assert outcomes(200, 2.0, seed=4) == {"inconclusive": 149, "fail": 51}


def test_a_canary_at_the_maximum_ratio_mostly_holds() -> None:
    # At exactly max_ratio either verdict is an error, each at most alpha of the time.
    assert outcomes(1000, 1.5, seed=5) == {"inconclusive": 199, "pass": 1}


def test_small_samples_are_inconclusive() -> None:
    stable = LatencySketch.of(np.arange(1.0, 150.0))
    check = latency_ratio(LatencySketch.of(5.0 * np.arange(1.0, 150.0)), stable)
    assert check.outcome is Outcome.INCONCLUSIVE and check.value is None
    assert (check.n_canary, check.n_stable) == (149, 149)
    assert check.reason == (
        "inconclusive: 149 canary and 149 stable latencies, at least 200 per version needed"
    )
    assert latency_ratio(stable, stable, min_n=100).outcome is Outcome.PASS


def test_the_check_reports_its_percentile_ratio_and_bounds() -> None:
    stable = LatencySketch.of(np.arange(1.0, 2001.0))
    slower = latency_ratio(LatencySketch.of(2.0 * np.arange(1.0, 2001.0)), stable, percentile=90)
    assert slower.name == "latency_p90_ratio" and slower.outcome is Outcome.FAIL
    assert slower.value == pytest.approx(2.0, rel=0.02)
    assert slower.details["stable"] == pytest.approx(
        np.percentile(np.arange(1.0, 2001.0), 90), rel=0.01
    )
    assert slower.details["lower"] > 1.5 and slower.details["relative_error"] == 0.01


def test_zeros_and_a_zero_stable_percentile() -> None:
    zeros = LatencySketch.of(np.zeros(500))
    same = latency_ratio(zeros, zeros)
    assert same.value == 1.0 and same.outcome is Outcome.PASS
    spike = latency_ratio(LatencySketch.of(np.ones(500)), zeros)
    # Below a microsecond counts as a microsecond: 1 ms is a thousand times that.
    assert spike.value == pytest.approx(1000.0, rel=0.01) and spike.outcome is Outcome.FAIL


def test_bad_arguments_are_refused() -> None:
    one = LatencySketch.of([1.0])
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\)"):
        latency_ratio(one, one, percentile=100)
    with pytest.raises(ValueError, match="max_ratio must be finite and > 0"):
        latency_ratio(one, one, max_ratio=0)
    with pytest.raises(ValueError, match="min_n must be >= 1"):
        latency_ratio(one, one, min_n=0)


def test_percentile_bounds_cover_the_true_quantile() -> None:
    rng = np.random.default_rng(15)
    n, q, alpha, reps = 500, 0.95, 0.025, 2000
    true = stats.expon.ppf(q, scale=10.0)
    bounds = np.array(
        [quantile_bounds(LatencySketch.of(rng.exponential(10.0, n)), q, alpha) for _ in range(reps)]
    )
    # Each bound misses on its side at most alpha of the time.
    assert float(np.mean(bounds[:, 0] > true)) <= alpha + 3 * math.sqrt(alpha / reps)
    assert float(np.mean(bounds[:, 1] < true)) <= alpha + 3 * math.sqrt(alpha / reps)
    assert quantile_bounds(LatencySketch.of(np.arange(1.0, 21.0)), q, alpha)[1] == math.inf
