"""Drift statistics against SciPy on the same data, and their edge cases.

Every binned statistic is checked where it must be exact (edges at every data
value) and within a stated tolerance where bins are coarser; exact ones must
equal SciPy's to rounding.
"""

from __future__ import annotations

import doctest
import importlib
import math
from collections.abc import Callable, Mapping

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from drift.stats import Method, categorical, correction, numerical

RNG_SEED = 20240601


def hist_on(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The NumericSketch histogram: buckets below, between and at-or-above the edges."""
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


def samples(n1: int = 800, n2: int = 600, shift: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(RNG_SEED)
    return rng.normal(0.0, 1.0, n1), rng.normal(shift, 1.2, n2)


# -- doctests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        "drift.stats",
        "drift.stats.numerical",
        "drift.stats.categorical",
        "drift.stats.correction",
        "drift.binning",
        "drift.columns",
        "drift.edges",
        "drift.profile",
        "drift.compare",
        "drift.report",
        "drift.evaluate",
    ],
)
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0


# -- Kolmogorov-Smirnov -------------------------------------------------------------


def test_ks_exact_is_scipy() -> None:
    a, b = samples()
    expected = stats.ks_2samp(a, b)
    assert numerical.ks_exact(a, b) == (expected.statistic, expected.pvalue)


@pytest.mark.parametrize(("n1", "n2"), [(800, 600), (50, 3000), (12_000, 11_000)])
def test_ks_binned_on_every_value_equals_scipy(n1: int, n2: int) -> None:
    # With an edge at every distinct value the histogram CDFs are the empirical ones,
    # so statistic and p-value (exact below 10,000 values, asymptotic above) must match.
    a, b = samples(n1, n2)
    edges = np.unique(np.concatenate((a, b)))
    d, p = numerical.ks_binned(hist_on(edges, a), hist_on(edges, b))
    expected = stats.ks_2samp(a, b)
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_ks_binned_with_coarse_bins_stays_close() -> None:
    a, b = samples(20_000, 20_000)
    edges = np.quantile(a, np.linspace(0, 1, 201))
    d, _ = numerical.ks_binned(hist_on(edges, a), hist_on(edges, b))
    exact = stats.ks_2samp(a, b).statistic
    assert d <= exact + 1e-12  # the binned statistic never overshoots
    assert d == pytest.approx(exact, abs=0.005)


def test_ks_pvalue_asymptotic_branch_matches_scipy_formula() -> None:
    p = numerical.ks_pvalue(6000, 5000, 12_000, 11_000)
    d = abs(6000 / 12_000 - 5000 / 11_000)
    en = round(12_000 * 11_000 / 23_000)
    assert p == pytest.approx(stats.kstwo.sf(d, en))


def test_ks_of_identical_constants_is_no_drift() -> None:
    assert numerical.ks_binned([0, 5, 0], [0, 7, 0]) == (0.0, 1.0)
    assert numerical.ks_exact([2.0] * 5, [2.0] * 9) == (0.0, 1.0)


def test_ks_binned_needs_values_on_both_sides() -> None:
    with pytest.raises(ValueError, match="both sides"):
        numerical.ks_binned([0, 0, 0], [1, 2, 0])


# -- Wasserstein --------------------------------------------------------------------


def test_wasserstein_exact_is_scipy_over_population_std() -> None:
    a, b = samples()
    expected = stats.wasserstein_distance(a, b) / np.std(a)
    assert numerical.wasserstein_exact(a, b) == pytest.approx(expected, rel=1e-12)


def test_wasserstein_exact_with_weights_equals_repeated_values() -> None:
    values, weights = np.array([0.0, 1.0, 5.0]), np.array([3, 1, 2])
    cur = np.array([0.5, 1.0, 4.0, 6.0])
    repeated = np.repeat(values, weights)
    assert numerical.wasserstein_exact(values, cur, weights) == pytest.approx(
        numerical.wasserstein_exact(repeated, cur)
    )


def test_wasserstein_norm_is_floored_at_a_thousandth() -> None:
    assert numerical.wasserstein_exact([1.0, 1.0], [1.5, 1.5]) == pytest.approx(500.0)


@pytest.mark.parametrize("n_edges", [501, 2001])
def test_wasserstein_binned_is_close_to_exact(n_edges: int) -> None:
    # Buckets must cover both samples: mass beyond the last edge is spread over a
    # single wide bucket (reference profiles add edges past their range for that).
    a, b = samples(20_000, 20_000)
    edges = np.quantile(np.concatenate((a, b)), np.linspace(0, 1, n_edges))
    binned = numerical.wasserstein_binned(
        edges, hist_on(edges, a), hist_on(edges, b), (a.min(), a.max()), (b.min(), b.max()), a.std()
    )
    assert binned == pytest.approx(numerical.wasserstein_exact(a, b), abs=0.01)


def test_wasserstein_binned_is_exact_for_uniform_buckets() -> None:
    # Uniform mass in [0, 1] against uniform mass in [2, 3]: every unit moves by 2.
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    w = numerical.wasserstein_binned(edges, [0, 10, 0, 0, 0], [0, 0, 0, 10, 0], (0, 1), (2, 3), 1.0)
    assert w == pytest.approx(2.0)


def test_wasserstein_binned_of_point_masses() -> None:
    # A constant reference at 1 and a constant current at 4, each in a zero-width bucket.
    edges = np.array([1.0, np.nextafter(1.0, 2.0), 4.0, np.nextafter(4.0, 5.0)])
    ref, cur = [0, 7, 0, 0, 0], [0, 0, 0, 3, 0]
    w = numerical.wasserstein_binned(edges, ref, cur, (1.0, 1.0), (4.0, 4.0), 0.0)
    assert w == pytest.approx(3.0 / 0.001)


@pytest.mark.parametrize("seed", range(20))
def test_wasserstein_binned_equals_the_quantile_integral(seed: int) -> None:
    # An independent oracle: W1 is the integral over u of |Q_ref(u) - Q_cur(u)|, with
    # each quantile function piecewise linear through the (CDF, knot) points.
    rng = np.random.default_rng(seed)
    edges = np.unique(np.round(rng.normal(size=rng.integers(2, 40)), int(rng.integers(0, 3))))
    if edges.size < 2:
        edges = np.array([0.0, 1.0])
    sides = []
    for _ in range(2):
        hist = rng.integers(0, 6, edges.size + 1).astype(float)
        hist[rng.integers(0, hist.size)] += 1
        lo = float(rng.choice(edges)) - float(rng.random() < 0.5) * float(rng.random())
        hi = max(lo, float(rng.choice(edges))) + float(rng.random() < 0.5) * float(rng.random())
        sides.append((hist, (lo, hi)))
    (ref, ref_extent), (cur, cur_extent) = sides

    def quantiles(hist: np.ndarray, extent: tuple[float, float], u: np.ndarray) -> np.ndarray:
        knots = np.clip(np.concatenate(([extent[0]], edges, [extent[1]])), *extent)
        cdf = np.concatenate(([0.0], np.cumsum(hist) / hist.sum()))
        return np.interp(u, cdf, knots)

    u = (np.arange(400_000) + 0.5) / 400_000
    oracle = float(np.mean(np.abs(quantiles(ref, ref_extent, u) - quantiles(cur, cur_extent, u))))
    binned = numerical.wasserstein_binned(edges, ref, cur, ref_extent, cur_extent, 1.0)
    assert binned == pytest.approx(oracle, abs=1e-4)


def test_wasserstein_binned_needs_values_on_both_sides() -> None:
    with pytest.raises(ValueError, match="both sides"):
        numerical.wasserstein_binned([0.0, 1.0], [0, 0, 0], [0, 1, 0], (0, 0), (0.5, 0.5), 1.0)


def test_wasserstein_binned_tolerates_infinite_extremes() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    w = numerical.wasserstein_binned(edges, [0, 5, 5, 0], [0, 5, 4, 1], (0, 2), (0, math.inf), 1)
    assert math.isfinite(w)


# -- binning like Evidently -----------------------------------------------------------


@pytest.mark.parametrize("n", [7, 100, 12_345])
def test_sturges_edges_are_numpys(n: int) -> None:
    values = np.random.default_rng(n).normal(size=n)
    expected = np.histogram_bin_edges(values, bins="sturges")
    got = numerical.sturges_edges(float(values.min()), float(values.max()), n)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_sturges_edges_of_a_constant() -> None:
    assert numerical.sturges_edges(3.0, 3.0, 10).tolist() == [2.5, 3.5]


def test_rebin_on_every_value_equals_numpy_histogram() -> None:
    a, _ = samples(2000, 10)
    edges = np.unique(a)
    target = numerical.sturges_edges(float(a.min()), float(a.max()), a.size)
    shares = numerical.rebin(edges, hist_on(edges, a), (a.min(), a.max()), target)
    expected = np.histogram(a, target)[0] / a.size
    # Values sit at bucket edges, so only buckets split by a target edge can differ.
    assert shares.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(shares, expected, atol=2 / a.size)


def test_fill_empty_follows_evidently() -> None:
    assert numerical.fill_empty([0.5, 0.5, 0.0]).tolist() == [0.5, 0.5, 0.0001]
    small = numerical.fill_empty([0.99995, 0.00005, 0.0])
    assert small[2] == pytest.approx(0.00005 / 1e6)
    assert numerical.fill_empty([0.0, 0.0]).tolist() == [0.0, 0.0]


# -- distances on shares ---------------------------------------------------------------


SHARES = (np.array([0.1, 0.4, 0.3, 0.2]), np.array([0.25, 0.25, 0.25, 0.25]))


def test_psi_formula() -> None:
    p, q = SHARES
    assert numerical.psi(p, q) == pytest.approx(float(np.sum((p - q) * np.log(p / q))))


def test_kl_divergence_is_scipy_entropy() -> None:
    p, q = SHARES
    assert numerical.kl_divergence(p, q) == pytest.approx(stats.entropy(p, q))


def test_jensen_shannon_is_scipy_with_natural_log() -> None:
    p, q = SHARES
    assert numerical.jensen_shannon(p, q) == pytest.approx(distance.jensenshannon(p, q))
    # Natural log: disjoint supports reach sqrt(ln 2), not 1.
    assert numerical.jensen_shannon([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))


def test_hellinger_formula_and_bounds() -> None:
    p, q = SHARES
    expected = math.sqrt(1 - np.sum(np.sqrt(p * q)))
    assert numerical.hellinger(p, q) == pytest.approx(expected)
    assert numerical.hellinger(p, p) == 0.0
    assert numerical.hellinger([1, 0], [0, 1]) == 1.0


def test_distances_with_empty_buckets_stay_finite() -> None:
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])
    for fn in (numerical.psi, numerical.kl_divergence, numerical.jensen_shannon):
        assert math.isfinite(fn(p, q))


# -- categorical ---------------------------------------------------------------------------


REF = {"a": 120, "b": 60, "c": 20}
CUR = {"a": 70, "b": 80, "c": 40}


def test_chi_square_is_scipy_with_expected_scaled_from_reference() -> None:
    keys = sorted(REF)
    observed = [CUR[k] for k in keys]
    expected = [REF[k] * sum(CUR.values()) / sum(REF.values()) for k in keys]
    want = stats.chisquare(observed, expected)
    assert categorical.chi_square(REF, CUR) == pytest.approx((want.statistic, want.pvalue))


def test_chi_square_with_a_new_category_is_certain_drift() -> None:
    assert categorical.chi_square(REF, {**CUR, "new": 1}) == (math.inf, 0.0)


def test_chi_square_of_one_category_has_nothing_to_test() -> None:
    assert categorical.chi_square({"a": 3}, {"a": 9}) == (0.0, 1.0)


def test_z_test_squared_is_the_uncorrected_2x2_chi_square() -> None:
    ref, cur = {"no": 130, "yes": 70}, {"no": 90, "yes": 110}
    z, p = categorical.z_test(ref, cur)
    table = [[ref["no"], ref["yes"]], [cur["no"], cur["yes"]]]
    want = stats.chi2_contingency(table, correction=False)
    assert z * z == pytest.approx(want.statistic)
    assert p == pytest.approx(want.pvalue)
    assert z < 0  # negative: the current has the larger share of values other than "no"


def test_z_test_of_the_same_single_value_is_no_drift() -> None:
    assert categorical.z_test({"x": 5}, {"x": 50}) == (0.0, 1.0)


def test_z_test_of_two_different_constants_is_drift() -> None:
    _, p = categorical.z_test({"x": 50}, {"y": 50})
    assert p < 1e-10


@pytest.mark.parametrize(
    ("fn", "on_shares"),
    [
        (categorical.jensen_shannon, numerical.jensen_shannon),
        (categorical.psi, numerical.psi),
        (categorical.kl_divergence, numerical.kl_divergence),
        (categorical.hellinger, numerical.hellinger),
    ],
)
def test_categorical_distances_use_shares_of_the_union(
    fn: Callable[[Mapping[str, int], Mapping[str, int]], float],
    on_shares: Callable[[np.ndarray, np.ndarray], float],
) -> None:
    cur = {**CUR, "d": 10}
    keys = sorted(REF.keys() | cur.keys())
    p = np.array([REF.get(k, 0) for k in keys]) / sum(REF.values())
    q = np.array([cur.get(k, 0) for k in keys]) / sum(cur.values())
    assert fn(REF, cur) == pytest.approx(on_shares(p, q))


def test_categorical_statistics_need_values_on_both_sides() -> None:
    with pytest.raises(ValueError, match="both sides"):
        categorical.chi_square({}, {"a": 1})
    with pytest.raises(ValueError, match="both sides"):
        categorical.z_test({"a": 1}, {})
    with pytest.raises(ValueError, match="both sides"):
        categorical.jensen_shannon({}, {"a": 1})


# -- correction and methods ------------------------------------------------------------------


def test_benjamini_hochberg_is_scipy() -> None:
    p = np.random.default_rng(RNG_SEED).uniform(0, 0.2, 25)
    np.testing.assert_allclose(
        correction.benjamini_hochberg(p), stats.false_discovery_control(p, method="bh")
    )
    assert correction.benjamini_hochberg([]).size == 0


def test_method_thresholds_and_directions_follow_evidently() -> None:
    assert {m.value for m in Method if m.is_p_value} == {"ks", "chisquare", "z"}
    assert Method.KS.drifted(0.05, 0.05) and not Method.Z.drifted(0.05, 0.05)
    assert Method.PSI.drifted(0.1, 0.1) and not Method.PSI.drifted(0.0999, 0.1)
    assert Method.HELLINGER.default_threshold == 0.1
    assert Method.CHI_SQUARE.default_threshold == 0.05
