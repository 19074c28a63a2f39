"""One feature's test: the default choice of method, and running any method.

The default choice is Evidently 0.7's (``_get_default_stattest`` in
``evidently.legacy.calculations.stattests.registry``), where ``n_values`` is
the number of distinct non-null values of reference and current together and
the reference size is counted without nulls:

- at most 1000 reference values: Kolmogorov-Smirnov for numerical features
  with more than 5 values, else chi-square, or the Z-test for at most 2 values;
- more than 1000: normed Wasserstein for numerical features with more than 5
  values, else Jensen-Shannon.

>>> num, cat = FeatureKind.NUMERICAL, FeatureKind.CATEGORICAL
>>> [str(default_method(num, 800, n)) for n in (50, 5, 2)], str(default_method(cat, 800, 3))
(['ks', 'chisquare', 'z'], 'chisquare')
>>> [str(default_method(num, 5000, n)) for n in (6, 5)], str(default_method(cat, 5000, 50))
(['wasserstein', 'jensenshannon'], 'jensenshannon')

Tests use exact values where both sides are known exactly (a reference small
enough to sit whole in its sample, or with few distinct values, against a
current window given as data) and the histograms otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from drift.profile import CategoricalProfile, NumericalProfile
from drift.schema import FeatureKind
from drift.sketch import CategoricalSketch, NumericSketch
from drift.stats import NUMERICAL_ONLY, Method, categorical, numerical

FloatArray = npt.NDArray[np.float64]
Outcome = tuple[Method, float, float | None]

SMALL_REFERENCE = 1000
FEW_VALUES = 5


def default_method(kind: FeatureKind, reference_count: int, n_values: int) -> Method:
    """Evidently 0.7's default test for a feature (see the module docstring)."""
    if reference_count <= SMALL_REFERENCE:
        if kind is FeatureKind.NUMERICAL and n_values > FEW_VALUES:
            return Method.KS
        return Method.CHI_SQUARE if n_values > 2 else Method.Z
    if kind is FeatureKind.NUMERICAL and n_values > FEW_VALUES:
        return Method.WASSERSTEIN
    return Method.JENSEN_SHANNON


def compare_categorical(
    ref: CategoricalProfile, cur: CategoricalSketch, method: Method | None
) -> Outcome:
    """Run ``method`` (default: Evidently's choice) on a categorical feature."""
    rc = {k: n for k, n in ref.sketch.counts.items() if n > 0}
    # Values past the window's caps count as one category the reference never saw.
    cc = cur.comparable_counts(rc)
    chosen = method or default_method(
        FeatureKind.CATEGORICAL, ref.count, len(rc.keys() | cc.keys())
    )
    return _on_counts(chosen, rc, cc)


def _on_counts(method: Method, rc: dict[str, int], cc: dict[str, int]) -> Outcome:
    if method is Method.CHI_SQUARE:
        return (method, *categorical.chi_square(rc, cc))
    if method is Method.Z:
        return (method, *categorical.z_test(rc, cc))
    if method in NUMERICAL_ONLY:
        raise ValueError(f"method {method} applies to numerical features only")
    distance = {
        Method.JENSEN_SHANNON: categorical.jensen_shannon,
        Method.PSI: categorical.psi,
        Method.KL_DIV: categorical.kl_divergence,
        Method.HELLINGER: categorical.hellinger,
    }[method]
    return method, distance(rc, cc), None


def compare_numerical(
    ref: NumericalProfile, sk: NumericSketch, values: FloatArray | None, method: Method | None
) -> Outcome:
    """Run ``method`` (default: Evidently's choice) on a numerical feature.

    ``values`` are the window's exact finite values when known (None for a sketch).
    """
    discrete = discrete_counts(ref, sk, values)
    n_values = len(discrete[0].keys() | discrete[1].keys()) if discrete else FEW_VALUES + 1
    chosen = method or default_method(FeatureKind.NUMERICAL, ref.count, n_values)
    if chosen is Method.KS:
        if values is not None and ref.holds_all:
            return (chosen, *numerical.ks_exact(ref.sample, values))
        return (chosen, *numerical.ks_binned(ref.sketch.hist, sk.hist))
    if chosen is Method.WASSERSTEIN:
        return chosen, _wasserstein(ref, sk, values, discrete), None
    if chosen in (Method.CHI_SQUARE, Method.Z):
        # Without distinct values, the reference's buckets stand in for categories.
        return _on_counts(chosen, *_as_text(*(discrete or _bucket_counts(ref, sk))))
    if chosen is Method.HELLINGER:
        p, q = _hellinger_shares(ref, sk, values, discrete)
        return chosen, numerical.hellinger(p, q), None
    if discrete:
        _, p, q = categorical.aligned(*_as_text(*discrete))
    else:
        p, q = _sturges_shares(ref, sk, values, None)
    p, q = p / p.sum(), q / q.sum()
    distance = {
        Method.JENSEN_SHANNON: numerical.jensen_shannon,
        Method.PSI: numerical.psi,
        Method.KL_DIV: numerical.kl_divergence,
    }[chosen]
    return chosen, distance(p, q), None


def _as_text(
    rc: Mapping[float, int], cc: Mapping[float, int]
) -> tuple[dict[str, int], dict[str, int]]:
    # Sorting numbers as text would reorder them (the Z-test's "first" value), so the
    # keys become zero-padded ranks in numeric order.
    rank = {k: f"{i:06d}" for i, k in enumerate(sorted(rc.keys() | cc.keys()))}
    return (
        {rank[k]: n for k, n in rc.items() if n > 0},
        {rank[k]: n for k, n in cc.items() if n > 0},
    )


def discrete_counts(
    ref: NumericalProfile, sk: NumericSketch, values: FloatArray | None
) -> tuple[dict[float, int], dict[float, int]] | None:
    """Counts per distinct value on both sides, when the reference has few values.

    Current values between reference values are counted exactly when the
    window's data is at hand; from a sketch, each bucket between two reference
    values stands for one new value.
    """
    if ref.values is None:
        return None
    known = np.asarray(ref.values, dtype=np.float64)
    edges = ref.edge_array
    at = np.searchsorted(edges, known, side="right")
    ref_counts = dict(zip(ref.values, ref.sketch.hist[at].tolist(), strict=True))
    cur_counts = {v: n for v, n in zip(ref.values, sk.hist[at].tolist(), strict=True) if n}
    if values is not None:
        stray = values[~np.isin(values, known)]
        if stray.size:
            keys, counts = np.unique(stray, return_counts=True)
            cur_counts.update(zip(keys.tolist(), counts.tolist(), strict=True))
        return ref_counts, cur_counts
    between = np.ones(sk.hist.size, dtype=bool)
    between[at] = False
    for b in np.flatnonzero(between & (sk.hist > 0)).tolist():
        if b == 0:
            key = sk.minimum
        elif b == len(edges):
            key = sk.maximum
        else:
            key = (float(edges[b - 1]) + float(edges[b])) / 2
        cur_counts[key] = int(sk.hist[b])
    return ref_counts, cur_counts


def _bucket_counts(
    ref: NumericalProfile, sk: NumericSketch
) -> tuple[dict[float, int], dict[float, int]]:
    rc = {float(i): n for i, n in enumerate(ref.sketch.hist.tolist()) if n}
    cc = {float(i): n for i, n in enumerate(sk.hist.tolist()) if n}
    return rc, cc


def _wasserstein(
    ref: NumericalProfile,
    sk: NumericSketch,
    values: FloatArray | None,
    discrete: tuple[dict[float, int], dict[float, int]] | None,
) -> float:
    if values is not None and ref.holds_all:
        return numerical.wasserstein_exact(ref.sample, values, norm=ref.std)
    if values is not None and discrete:
        keys = list(discrete[0])
        weights = [discrete[0][k] for k in keys]
        return numerical.wasserstein_exact(keys, values, weights, norm=ref.std)
    return numerical.wasserstein_binned(
        ref.edge_array,
        ref.sketch.hist,
        sk.hist,
        (ref.sketch.minimum, ref.sketch.maximum),
        (sk.minimum, sk.maximum),
        ref.std,
    )


def _sturges_shares(
    ref: NumericalProfile, sk: NumericSketch, values: FloatArray | None, n_bins_from: int | None
) -> tuple[FloatArray, FloatArray]:
    """Both sides' shares in Sturges buckets over the combined range, as Evidently bins.

    ``n_bins_from`` is the count Sturges' rule sees (all values by default).
    """
    n = n_bins_from or ref.count + sk.count
    if values is not None and ref.holds_all:
        both = np.concatenate((ref.sample, values))
        target = numerical.sturges_edges(float(both.min()), float(both.max()), n)
        p = np.histogram(ref.sample, target)[0] / ref.sample.size
        q = np.histogram(values, target)[0] / values.size
        return p.astype(np.float64), q.astype(np.float64)
    ref_extent = (ref.sketch.minimum, ref.sketch.maximum)
    cur_extent = (sk.minimum, sk.maximum)
    lo, hi = min(ref_extent[0], cur_extent[0]), max(ref_extent[1], cur_extent[1])
    target = numerical.sturges_edges(lo, hi, n)
    p = numerical.rebin(ref.edge_array, ref.sketch.hist, ref_extent, target)
    q = numerical.rebin(ref.edge_array, sk.hist, cur_extent, target)
    return p, q


def _hellinger_shares(
    ref: NumericalProfile,
    sk: NumericSketch,
    values: FloatArray | None,
    discrete: tuple[dict[float, int], dict[float, int]] | None,
) -> tuple[FloatArray, FloatArray]:
    # Evidently bins Hellinger by Sturges over the distinct values, not all values.
    if discrete:
        keys = sorted(discrete[0].keys() | discrete[1].keys())
        target = numerical.sturges_edges(keys[0], keys[-1], len(keys))
        p = np.histogram(keys, target, weights=[discrete[0].get(k, 0) for k in keys])[0]
        q = np.histogram(keys, target, weights=[discrete[1].get(k, 0) for k in keys])[0]
        return p / p.sum(), q / q.sum()
    n_unique = None
    if values is not None and ref.holds_all:
        n_unique = int(np.unique(np.concatenate((ref.sample, values))).size)
    return _sturges_shares(ref, sk, values, n_unique)
