"""Columns with a large share of their mass on a few values (zero-inflated amounts, counts).

The profile's edges must hold such point masses exactly: spread across a wide
bucket, a changing share of zeros is undercounted by the binned Wasserstein
distance and the drift goes unseen. Every window here is judged from its sketch
alone (the service's path) and compared with SciPy on the raw values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from drift.binning import EdgeIndex, histogram, thinned
from drift.compare import compare_numerical
from drift.edges import heavy_values, numeric_edges
from drift.profile import NumericalProfile, ReferenceProfile, current_sketch
from drift.sketch import NumericSketch
from drift.stats import Method, numerical
from tests.unit.drift.test_profile import generate

Generator = Callable[[np.random.Generator, int, bool], np.ndarray]


def _with_atoms(
    rng: np.random.Generator, body: np.ndarray, atoms: dict[float, float]
) -> np.ndarray:
    """``body`` with each atom replacing its share of the values, chosen at random."""
    u = rng.random(body.size)
    start = 0.0
    for value, share in atoms.items():
        body[(u >= start) & (u < start + share)] = value
        start += share
    return body


def spending(rng: np.random.Generator, n: int, drifted: bool) -> np.ndarray:
    # No purchase, or at least 50: the zeros sit far below everything else.
    zeros = 0.36 if drifted else 0.30
    return _with_atoms(rng, 50.0 + rng.lognormal(2.0, 0.5, n), {0.0: zeros})


def counts(rng: np.random.Generator, n: int, drifted: bool) -> np.ndarray:
    mean = 7.0 if drifted else 6.0
    body = rng.negative_binomial(2, 2.0 / (2.0 + mean), n).astype(np.float64)
    return _with_atoms(rng, body, {0.0: 0.24 if drifted else 0.41})


def capped(rng: np.random.Generator, n: int, drifted: bool) -> np.ndarray:
    # Scores clipped at 0 and 100, with a default of 50 filled in for a fifth.
    body = np.clip(rng.normal(60.0 if drifted else 55.0, 30.0, n), 0.0, 100.0)
    return _with_atoms(rng, body, {50.0: 0.2 if drifted else 0.15, 100.0: 0.1})


def sentinels(rng: np.random.Generator, n: int, drifted: bool) -> np.ndarray:
    atoms = {-1.0: 0.25, 2.5: 0.2, 9.0: 0.15} if drifted else {-1.0: 0.2, 2.5: 0.2, 9.0: 0.2}
    return _with_atoms(rng, rng.normal(3.0, 1.0, n), atoms)


GENERATORS: dict[str, Generator] = {
    "spending": spending,
    "counts": counts,
    "capped": capped,
    "sentinels": sentinels,
}


def profile_and_window(
    name: str, n_ref: int, drifted: bool, seed: int = 0
) -> tuple[NumericalProfile, NumericSketch, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n_ref, list(GENERATORS).index(name)])
    ref = GENERATORS[name](rng, n_ref, False)
    cur = GENERATORS[name](rng, 20_000, drifted)
    profile = ReferenceProfile.from_columns({"x": ref}, {"x": "numerical"})
    feature = profile.features["x"]
    assert isinstance(feature, NumericalProfile)
    window = current_sketch(profile, {"x": cur}).features["x"]
    assert isinstance(window, NumericSketch)
    return feature, window, ref, cur


@pytest.mark.parametrize("name", list(GENERATORS))
@pytest.mark.parametrize("n_ref", [6_000, 100_000, 1_000_000])
@pytest.mark.parametrize("drifted", [False, True])
def test_binned_wasserstein_within_a_hundredth_of_exact(
    name: str, n_ref: int, drifted: bool
) -> None:
    feature, window, ref, cur = profile_and_window(name, n_ref, drifted)
    method, binned, _ = compare_numerical(feature, window, None, Method.WASSERSTEIN)
    exact = numerical.wasserstein_exact(ref, cur)
    assert method is Method.WASSERSTEIN
    assert binned == pytest.approx(exact, abs=0.01)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_binned_ks_and_psi_stay_close_to_exact(name: str) -> None:
    feature, window, ref, cur = profile_and_window(name, 100_000, True)
    d, _ = numerical.ks_binned(feature.sketch.hist, window.hist)
    assert d == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=0.005)
    # Evidently's PSI: Sturges bins over the combined range of the raw values.
    both = np.concatenate((ref, cur))
    target = np.histogram_bin_edges(both, bins="sturges")
    exact = numerical.psi(
        np.histogram(ref, target)[0] / ref.size, np.histogram(cur, target)[0] / cur.size
    )
    _, binned, _ = compare_numerical(feature, window, None, Method.PSI)
    assert binned == pytest.approx(exact, abs=0.01)


def test_the_drift_decision_on_a_changed_share_of_zeros() -> None:
    # 30% zeros become 36%: Evidently (exact) says drift at 0.1 and so must the sketch.
    feature, window, ref, cur = profile_and_window("spending", 100_000, True)
    assert numerical.wasserstein_exact(ref, cur) >= 0.1
    assert compare_numerical(feature, window, None, None)[1] >= 0.1


def test_heavy_values_are_buckets_of_their_own() -> None:
    feature, _, ref, _ = profile_and_window("sentinels", 100_000, False)
    for value in (-1.0, 2.5, 9.0):
        at = int(np.searchsorted(feature.edge_array, value, side="right"))
        assert feature.edges[at - 1] == value
        assert feature.edges[at] == np.nextafter(value, np.inf)
        assert feature.sketch.hist[at] == np.count_nonzero(ref == value)


def test_heavy_values_are_those_of_a_bucket_share_in_the_sample() -> None:
    sample = np.sort(np.concatenate((np.zeros(30), np.full(9, 2.0), np.arange(961.0) + 0.5)))
    assert heavy_values(sample, bins=100).tolist() == [0.0]
    assert heavy_values(np.arange(1000.0), bins=100).size == 0


def test_thinning_keeps_the_buckets_of_heavy_values() -> None:
    edges = np.sort(np.concatenate((np.linspace(0.0, 1.0, 1001), [np.nextafter(0.5, 1.0)])))
    kept = thinned(edges, (0.0, 1.0), cells=1000)
    assert np.nextafter(0.5, 1.0) in kept
    assert 0.5 in kept


def test_the_grid_still_pays_off_when_most_values_sit_on_a_point() -> None:
    x = spending(np.random.default_rng(5), 100_000, False)
    sample = np.sort(x[:5_000])
    edges, _ = numeric_edges(x, sample, 500, float(x.std()))
    assert np.nextafter(0.0, 1.0) in edges
    index = EdgeIndex(edges, span=(float(x.min()), float(x.max())))
    assert index.worthwhile(sample)
    expected = np.bincount(np.searchsorted(edges, x, "right"), minlength=edges.size + 1)
    assert (histogram(edges, x, index) == expected).all()


GAP_CASES = {
    # New values at both ends of the empty bucket between the zeros and the rest: the
    # binned distance spreads them across it, the worst case the bound allows for.
    "new values in a gap": (spending, lambda rng, n: np.where(rng.random(n) < 0.5, 5.0, 45.0)),
    "shifted counts": (counts, lambda rng, n: counts(rng, n, True) + 0.5),
    "continuous current": (
        sentinels,
        lambda rng, n: rng.normal(3.5, 2.0, n),
    ),
}


@pytest.mark.parametrize("case", list(GAP_CASES))
@pytest.mark.parametrize("seed", range(3))
def test_the_stated_bound_holds_for_any_window(case: str, seed: int) -> None:
    make_ref, make_cur = GAP_CASES[case]
    rng = np.random.default_rng(seed)
    ref, cur = make_ref(rng, 50_000, False), make_cur(rng, 5_000)
    profile = ReferenceProfile.from_columns({"x": ref}, {"x": "numerical"}, bins=50)
    feature = profile.features["x"]
    assert isinstance(feature, NumericalProfile)
    window = current_sketch(profile, {"x": cur}).features["x"]
    assert isinstance(window, NumericSketch)
    args = (
        feature.edge_array,
        feature.sketch.hist,
        window.hist,
        (feature.sketch.minimum, feature.sketch.maximum),
        (window.minimum, window.maximum),
        feature.std,
    )
    error = abs(numerical.wasserstein_binned(*args) - numerical.wasserstein_exact(ref, cur))
    bound = numerical.wasserstein_binned_bound(*args)
    assert error <= bound + 1e-12


@settings(max_examples=80, deadline=None)
@given(
    edges=st.lists(st.floats(-100, 100), min_size=1, max_size=30, unique=True).map(
        lambda v: np.array(sorted(v))
    ),
    ref_atoms=st.lists(st.floats(-150, 150), min_size=1, max_size=4),
    cur_atoms=st.lists(st.floats(-150, 150), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_bound_holds_for_any_edges_and_values(
    edges: np.ndarray, ref_atoms: list[float], cur_atoms: list[float], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    # Point masses and continuous values, anywhere with respect to the edges.
    ref = np.concatenate((rng.choice(ref_atoms, 300), rng.normal(0.0, 60.0, 200)))
    cur = np.concatenate((rng.choice(cur_atoms, 100), rng.uniform(-150.0, 150.0, 50)))

    def hist(x: np.ndarray) -> np.ndarray:
        return np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1)

    args = (
        edges,
        hist(ref),
        hist(cur),
        (float(ref.min()), float(ref.max())),
        (float(cur.min()), float(cur.max())),
        float(ref.std()),
    )
    error = abs(numerical.wasserstein_binned(*args) - numerical.wasserstein_exact(ref, cur))
    assert error <= numerical.wasserstein_binned_bound(*args) * (1 + 1e-9) + 1e-12


def test_a_point_mass_at_the_largest_float_keeps_the_edges_finite() -> None:
    big = np.finfo(np.float64).max
    x = np.where(np.arange(50_000) % 2 == 0, big / 2, np.linspace(0.0, big / 4, 50_000))
    x[:10_000] = big
    edges, _ = numeric_edges(x, np.sort(x[::10]), 100, 1.0)
    assert np.isfinite(edges).all()
    assert (np.diff(edges) > 0).all()


def test_a_column_of_the_largest_float_alone_still_has_two_edges() -> None:
    column = np.full(3, np.finfo(np.float64).max)
    edges, values = numeric_edges(column, column, 10, 0.0)
    assert values is not None and edges.size == 2 and np.isfinite(edges).all()


@pytest.mark.parametrize(
    ("name", "most"),
    [("normal", 0.006), ("lognormal", 0.008), *((name, 0.003) for name in GENERATORS)],
)
def test_the_references_part_of_the_bound_is_the_documented_one(name: str, most: float) -> None:
    rng = np.random.default_rng(0)
    ref = generate(name, rng, 100_000, False) if name in ("normal", "lognormal") else None
    if ref is None:
        ref = GENERATORS[name](rng, 100_000, False)
    feature = ReferenceProfile.from_columns({"x": ref}, {"x": "numerical"}).features["x"]
    assert isinstance(feature, NumericalProfile)
    extent = (feature.sketch.minimum, feature.sketch.maximum)
    hist = feature.sketch.hist
    # Against itself the bound counts the reference's part twice.
    part = numerical.wasserstein_binned_bound(
        feature.edge_array, hist, hist, extent, extent, feature.std
    )
    assert 0.0005 < part / 2 <= most
