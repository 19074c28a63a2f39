"""Drift statistics of one numerical feature, on histograms or on exact values.

Histograms follow :class:`drift.sketch.NumericSketch`: ``len(edges) + 1``
buckets, ``hist[0]`` below the first edge, ``hist[-1]`` at or above the last.
Where a statistic needs positions inside a bucket, mass is spread uniformly
between the bucket's edges, clipped to the sample's own ``(minimum, maximum)``
extent, so the open under- and overflow buckets get a finite width.

Decisions must match Evidently 0.7 (``evidently.legacy.calculations.stattests``),
so the definitions follow it: the Wasserstein distance is divided by the
population standard deviation of the reference (at least 0.001); PSI and KL
replace empty buckets as Evidently's ``get_binned_data(feel_zeroes=True)`` does;
Jensen-Shannon is SciPy's distance with the natural logarithm and no
replacement; binned distances of continuous data use Sturges bins over the
combined range, as Evidently does.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped, unused-ignore]
from scipy.spatial import distance  # type: ignore[import-untyped, unused-ignore]

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

# scipy.stats.ks_2samp computes exact p-values up to this many values per sample.
KS_EXACT_LIMIT = 10_000
# Evidently's floor for the reference spread that normalises Wasserstein.
MIN_NORM = 0.001


def ks_exact(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and two-sided p-value.

    Exactly :func:`scipy.stats.ks_2samp` (method ``"auto"``), which Evidently
    calls on the raw, null-free columns.

    Examples
    --------
    >>> d, p = ks_exact([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0])
    >>> round(d, 3), round(p, 3)
    (0.5, 0.771)

    References
    ----------
    Smirnov, N. (1948). Table for estimating the goodness of fit of empirical
    distributions. Annals of Mathematical Statistics 19(2), 279-281.
    """
    result = stats.ks_2samp(np.asarray(reference, float), np.asarray(current, float))
    return float(result.statistic), float(result.pvalue)


def ks_binned(reference_hist: ArrayLike, current_hist: ArrayLike) -> tuple[float, float]:
    """Kolmogorov-Smirnov statistic and p-value from two histograms on the same edges.

    The empirical CDFs are known exactly at every edge, so the statistic is
    the largest CDF gap over the edges: a lower bound of the exact statistic
    that converges to it as bins get finer (the gap is flat at its maximum,
    so the error shrinks faster than the bucket mass). The p-value is SciPy's
    for that statistic and those sample sizes: exact up to 10,000 values per
    sample, Smirnov's asymptotic distribution beyond, like ``ks_2samp``.

    Examples
    --------
    >>> d, p = ks_binned([0, 2, 2, 0], [0, 0, 2, 2])
    >>> round(d, 3), round(p, 3)
    (0.5, 0.771)

    References
    ----------
    Hodges, J. L. (1958). The significance probability of the Smirnov
    two-sample test. Arkiv for Matematik 3(5), 469-486.
    """
    ref = np.asarray(reference_hist, dtype=np.int64)
    cur = np.asarray(current_hist, dtype=np.int64)
    n1, n2 = int(ref.sum()), int(cur.sum())
    if n1 == 0 or n2 == 0:
        raise ValueError("Kolmogorov-Smirnov needs values on both sides")
    below1, below2 = np.cumsum(ref), np.cumsum(cur)
    gaps = np.abs(below1 * n2 - below2 * n1)  # integer, so ties are exact
    at = int(np.argmax(gaps))
    return float(gaps[at] / (n1 * n2)), ks_pvalue(int(below1[at]), int(below2[at]), n1, n2)


def ks_pvalue(below_ref: int, below_cur: int, n_ref: int, n_cur: int) -> float:
    """SciPy's two-sided KS p-value for the gap ``|below_ref/n_ref - below_cur/n_cur|``.

    The exact null distribution of ``ks_2samp`` is not public, but it depends
    only on the statistic and the sample sizes, so it is read off two witness
    samples of the same sizes with exactly that gap.

    >>> round(ks_pvalue(2, 0, 4, 4), 3)
    0.771
    """
    if max(n_ref, n_cur) > KS_EXACT_LIMIT:
        d = abs(below_ref / n_ref - below_cur / n_cur)
        m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
        return float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))
    ref = np.repeat([0.0, 1.0], [below_ref, n_ref - below_ref])
    cur = np.repeat([0.0, 1.0], [below_cur, n_cur - below_cur])
    return float(stats.ks_2samp(ref, cur).pvalue)


def wasserstein_exact(
    reference: ArrayLike,
    current: ArrayLike,
    reference_weights: ArrayLike | None = None,
    norm: float | None = None,
) -> float:
    """First Wasserstein distance divided by the reference's standard deviation.

    ``norm`` defaults to the population standard deviation of ``reference``
    (weighted when weights are given), floored at 0.001 as in Evidently.

    Examples
    --------
    >>> round(wasserstein_exact([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]), 4)
    0.8944

    References
    ----------
    Villani, C. (2009). Optimal Transport: Old and New, ch. 6. Springer.
    """
    ref = np.asarray(reference, dtype=np.float64)
    weights = None if reference_weights is None else np.asarray(reference_weights, float)
    if norm is None:
        mean = float(np.average(ref, weights=weights))
        norm = math.sqrt(float(np.average((ref - mean) ** 2, weights=weights)))
    raw = stats.wasserstein_distance(ref, np.asarray(current, float), u_weights=weights)
    return float(raw) / max(norm, MIN_NORM)


def wasserstein_binned(
    edges: ArrayLike,
    reference_hist: ArrayLike,
    current_hist: ArrayLike,
    reference_extent: tuple[float, float],
    current_extent: tuple[float, float],
    norm: float,
) -> float:
    """Normed first Wasserstein distance between two histograms on the same edges.

    ``W1 = integral |F_ref(x) - F_cur(x)| dx`` with each CDF piecewise linear
    between its edges (clipped to its extent); ``norm`` is the reference's
    standard deviation, floored at 0.001.

    Examples
    --------
    >>> round(wasserstein_binned([1.0, 2.0, 3.0], [0, 4, 0, 0], [0, 0, 4, 0],
    ...                          (1.0, 2.0), (2.0, 3.0), 1.0), 6)
    1.0

    References
    ----------
    Villani, C. (2009). Optimal Transport: Old and New, ch. 6. Springer.
    """
    from drift import kernels  # numba: imported by the processes that compare sketches

    e = np.ascontiguousarray(edges, dtype=np.float64)
    ref, ref_extent = _side(e, reference_hist, reference_extent)
    cur, cur_extent = _side(e, current_hist, current_extent)
    return kernels.wasserstein_binned(e, ref, cur, ref_extent, cur_extent) / max(norm, MIN_NORM)


def wasserstein_binned_bound(
    edges: ArrayLike,
    reference_hist: ArrayLike,
    current_hist: ArrayLike,
    reference_extent: tuple[float, float],
    current_extent: tuple[float, float],
    norm: float,
) -> float:
    """How far :func:`wasserstein_binned` can be from the exact value, whatever the data.

    W1 is a metric, so the binned distance is within ``W1(F, F_binned)`` of the
    exact one on each side. Inside a bucket of width ``w`` (clipped to the
    side's extent) holding a share ``m`` of a side's values, the true CDF and
    the linear one start and end together and differ by at most ``m``; their
    area apart is largest, ``m * w / 2``, when the values all sit at one end.
    The bound is the sum of those areas on both sides over ``norm``: a point
    mass in a bucket of its own (width one ulp) adds nothing, and ``m`` is
    about ``1 / bins`` in the body of a profile's reference.

    >>> round(wasserstein_binned_bound([0.0, 1.0], [0, 4, 0], [0, 2, 2], (0.0, 1.0),
    ...                                (0.0, 4.0), 1.0), 6)
    1.5
    """
    e = np.asarray(edges, dtype=np.float64)
    total = 0.0
    for hist, extent in ((reference_hist, reference_extent), (current_hist, current_extent)):
        h, (lo, hi) = _side(e, hist, extent)
        knots = np.concatenate(([lo], np.clip(e, lo, hi), [hi]))
        total += float(np.dot(h, np.diff(knots))) / (2.0 * float(h.sum()))
    return total / max(norm, MIN_NORM)


def _side(
    edges: FloatArray, hist: ArrayLike, extent: tuple[float, float]
) -> tuple[FloatArray, tuple[float, float]]:
    """A histogram as floats with its extent made finite; it must hold values."""
    h = np.ascontiguousarray(hist, dtype=np.float64)
    if h.sum() <= 0:
        raise ValueError("a binned statistic needs values on both sides")
    return h, _finite_extent(edges, extent)


def _finite_extent(edges: FloatArray, extent: tuple[float, float]) -> tuple[float, float]:
    # Sketches fed infinities carry infinite extremes; the outer edges bound them instead.
    lo, hi = extent
    lo = lo if math.isfinite(lo) else float(min(edges[0], hi if math.isfinite(hi) else edges[0]))
    hi = hi if math.isfinite(hi) else float(max(edges[-1], lo))
    return lo, max(lo, hi)


def sturges_edges(lo: float, hi: float, n: int) -> FloatArray:
    """``np.histogram_bin_edges(values, bins="sturges")`` from the values' range and count.

    >>> sturges_edges(0.0, 2.0, 7).tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0]
    """
    if hi <= lo:
        return np.array([lo - 0.5, hi + 0.5])
    width = (hi - lo) / (math.log2(n) + 1.0)
    return np.linspace(lo, hi, math.ceil((hi - lo) / width) + 1)


def rebin(
    edges: ArrayLike, hist: ArrayLike, extent: tuple[float, float], target: ArrayLike
) -> FloatArray:
    """Share of a histogram's mass in each bucket ``[target[i], target[i+1])``.

    The last target bucket is closed, as in ``np.histogram``; mass is spread
    uniformly inside the source buckets.

    >>> rebin([0.0, 2.0], [0, 4, 0], (0.0, 2.0), [0.0, 1.0, 2.0]).tolist()
    [0.5, 0.5]
    """
    from drift import kernels

    e = np.ascontiguousarray(edges, dtype=np.float64)
    h, finite = _side(e, hist, extent)
    below = kernels.cdf_below(e, h, finite, np.ascontiguousarray(target, dtype=np.float64))
    below[0], below[-1] = 0.0, 1.0
    return np.diff(below)


def fill_empty(shares: ArrayLike) -> FloatArray:
    """Evidently's replacement of empty buckets before PSI and KL.

    An empty bucket gets a millionth of the smallest non-empty share when that
    is at most 0.0001, else 0.0001.

    >>> fill_empty([0.5, 0.5, 0.0]).tolist()
    [0.5, 0.5, 0.0001]
    """
    p = np.array(shares, dtype=np.float64)
    nonzero = p[p != 0]
    if nonzero.size:
        smallest = float(nonzero.min())
        p[p == 0] = smallest / 1e6 if smallest <= 0.0001 else 0.0001
    return p


def psi(reference_shares: ArrayLike, current_shares: ArrayLike) -> float:
    """Population stability index ``sum((r - c) * ln(r / c))`` after :func:`fill_empty`.

    Examples
    --------
    >>> round(psi([0.5, 0.5], [0.25, 0.75]), 4)
    0.2747

    References
    ----------
    Yurdakul, B. (2018). Statistical properties of population stability
    index. Dissertation, Western Michigan University.
    """
    r, c = fill_empty(reference_shares), fill_empty(current_shares)
    return float(np.sum((r - c) * np.log(r / c)))


def kl_divergence(reference_shares: ArrayLike, current_shares: ArrayLike) -> float:
    """Kullback-Leibler divergence ``KL(reference || current)`` in nats after :func:`fill_empty`.

    Both sides are renormalised, as :func:`scipy.stats.entropy` does.

    Examples
    --------
    >>> round(kl_divergence([0.5, 0.5], [0.25, 0.75]), 4)
    0.1438

    References
    ----------
    Kullback, S. and Leibler, R. A. (1951). On information and sufficiency.
    Annals of Mathematical Statistics 22(1), 79-86.
    """
    return float(stats.entropy(fill_empty(reference_shares), fill_empty(current_shares)))


def jensen_shannon(reference_shares: ArrayLike, current_shares: ArrayLike) -> float:
    """Jensen-Shannon distance (natural logarithm), as ``scipy.spatial.distance.jensenshannon``.

    Examples
    --------
    >>> round(jensen_shannon([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]), 4)
    0.5887

    References
    ----------
    Endres, D. M. and Schindelin, J. E. (2003). A new metric for probability
    distributions. IEEE Transactions on Information Theory 49(7), 1858-1860.
    """
    p = np.asarray(reference_shares, dtype=np.float64)
    q = np.asarray(current_shares, dtype=np.float64)
    return float(distance.jensenshannon(p, q))


def hellinger(reference_shares: ArrayLike, current_shares: ArrayLike) -> float:
    """Hellinger distance ``sqrt(1 - sum(sqrt(p * q)))`` of two share vectors.

    Examples
    --------
    >>> round(hellinger([0.5, 0.5], [0.25, 0.75]), 4)
    0.1846

    References
    ----------
    Hellinger, E. (1909). Neue Begründung der Theorie quadratischer Formen von
    unendlichvielen Veränderlichen. J. Reine Angew. Math. 136, 210-271.
    """
    p = np.asarray(reference_shares, dtype=np.float64)
    q = np.asarray(current_shares, dtype=np.float64)
    overlap = float(np.clip(np.sum(np.sqrt(p * q)), 0.0, 1.0))
    return math.sqrt(1.0 - overlap)
