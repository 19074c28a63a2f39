"""How far apart are the canary's and the stable version's predictions?

The distance is Jensen-Shannon's, base 2: the square root of the
Jensen-Shannon divergence in bits, so 0 for identical distributions, 1 for
disjoint ones, symmetric, and a metric (the divergence itself is not). It is
:func:`drift.stats.numerical.jensen_shannon` (SciPy's distance, natural
logarithm) rescaled by ``1 / sqrt(ln 2)``, the change of base of a
divergence carried through the square root.

Two samples of the same distribution are not at distance 0: over ``k``
non-empty bins, ``8 * JSD_nats / (1/n_canary + 1/n_stable)`` is close to
chi-square with ``k - 1`` degrees of freedom (it is the G statistic of the
two-sample homogeneity test to second order). A threshold below that noise
floor would fail identical versions, so :func:`prediction_divergence` holds
(inconclusive) until the samples are large enough for the threshold to mean
something.

That noise grows with the bins, and predictions come binned on a reference
profile's (500 by default), far more than a canary step's few hundred or
thousand predictions fill: most bins then hold an event or two, the distance
of a healthy canary is mostly noise (0.90 was measured on the demo's first
step, against 0.68 between the two models), and the chi-square approximation
the noise floor rests on no longer holds. :func:`prediction_divergence`
therefore merges adjacent bins (for categories: the rarest ones) into fewer
of about equal pooled mass before it compares: at most one per
:data:`MIN_PER_BIN` events of the smaller sample (Cochran's rule for the
approximation), and no more than keep the noise floor at or below the
threshold, so the check can reach a verdict whenever two bins allow one.
The grouping reads both versions' counts alike, so identical versions still
fail with probability about ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped, unused-ignore]

from drift.canary.check import Check, Outcome, check_alpha, check_min_n
from drift.stats import categorical, numerical

Histogram = npt.ArrayLike | Mapping[str, int]
FloatArray = npt.NDArray[np.float64]
# Events of the smaller sample per compared bin, at least (Cochran's rule of five expected
# counts per cell for the chi-square approximation of the noise floor).
MIN_PER_BIN = 5


def _aligned(canary: Histogram, stable: Histogram) -> tuple[FloatArray, FloatArray]:
    if isinstance(canary, Mapping) != isinstance(stable, Mapping):
        raise ValueError("both histograms must be category counts, or both bin counts")
    if isinstance(canary, Mapping) and isinstance(stable, Mapping):
        _, c, s = categorical.aligned(canary, stable)
    else:
        c = np.asarray(canary, dtype=np.float64)
        s = np.asarray(stable, dtype=np.float64)
        if c.shape != s.shape or c.ndim != 1:
            raise ValueError(f"histograms must have the same bins, got {c.shape} and {s.shape}")
    if np.any(~np.isfinite(c)) or np.any(~np.isfinite(s)) or np.any(c < 0) or np.any(s < 0):
        raise ValueError("histogram counts must be finite and >= 0")
    return c, s


def js_distance(canary: Histogram, stable: Histogram) -> float:
    """Jensen-Shannon distance, base 2, between two histograms over the same bins.

    Bin counts (arrays) or category counts (mappings; a category missing on
    one side counts 0 there). Both need some mass.

    >>> js_distance([5, 5, 0], [5, 5, 0]), js_distance([3, 0], [0, 7])
    (0.0, 1.0)
    >>> round(js_distance({"a": 1, "b": 1}, {"b": 1, "c": 1}), 4)
    0.7071
    """
    c, s = _aligned(canary, stable)
    if c.sum() <= 0 or s.sum() <= 0:
        raise ValueError("the Jensen-Shannon distance needs counts on both sides")
    nats = numerical.jensen_shannon(c / c.sum(), s / s.sum())
    # Rounding can leave identical inputs at -0.0 or a disjoint pair a hair above 1.
    return float(min(max(nats / math.sqrt(math.log(2.0)), 0.0), 1.0))


def null_distance(n_canary: int, n_stable: int, bins: int, alpha: float) -> float:
    """The distance identical distributions exceed with probability about ``alpha``.

    >>> round(null_distance(1000, 1000, 10, 0.01), 4)
    0.0884
    """
    if bins < 2:
        return 0.0
    chi2 = float(stats.chi2.isf(alpha, bins - 1))
    return math.sqrt(chi2 * (1.0 / n_canary + 1.0 / n_stable) / (8.0 * math.log(2.0)))


def prediction_divergence(
    canary: Histogram,
    stable: Histogram,
    *,
    threshold: float = 0.1,
    min_n: int = 1000,
    alpha: float = 0.01,
) -> Check:
    """Fail when the canary's predictions are farther than ``threshold`` from stable's.

    ``value`` is :func:`js_distance`. Inconclusive below ``min_n`` events per
    version, and while :func:`null_distance` at ``alpha`` is above the
    threshold: then identical versions would fail more often than ``alpha``.
    The default threshold, 0.1, is a divergence of 0.01 bit; at 1,000 events
    per version it is above the noise floor for up to 14 non-empty bins.

    >>> prediction_divergence([500, 500, 0], [480, 520, 0]).outcome
    <Outcome.PASS: 'pass'>
    >>> prediction_divergence([700, 300, 0], [480, 520, 0]).outcome
    <Outcome.FAIL: 'fail'>
    """
    check_alpha(alpha)
    check_min_n(min_n)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    ordered = not isinstance(canary, Mapping)
    c, s = _aligned(canary, stable)
    n_c, n_s = int(c.sum()), int(s.sum())
    name = "prediction_divergence"
    if min(n_c, n_s) < min_n:
        reason = (
            f"inconclusive: {n_c} canary and {n_s} stable predictions, "
            f"at least {min_n} per version needed"
        )
        return Check(name, Outcome.INCONCLUSIVE, None, threshold, n_c, n_s, reason)
    observed = int(np.count_nonzero((c > 0) | (s > 0)))
    bins = compared_bins(n_c, n_s, observed, threshold, alpha)
    c, s = merged(c, s, bins, ordered)
    distance = js_distance(c, s)
    noise = null_distance(n_c, n_s, bins, alpha)
    details = {
        "null_distance": noise,
        "bins": float(bins),
        "bins_observed": float(observed),
        "alpha": alpha,
    }
    over = f"{bins} bins" + (f" (merged from {observed})" if bins < observed else "")
    if noise > threshold:
        outcome = Outcome.INCONCLUSIVE
        reason = (
            f"inconclusive: Jensen-Shannon distance {distance:.4f}, but at {n_c} canary and "
            f"{n_s} stable predictions over {over} identical versions exceed "
            f"{noise:.4f} with probability {alpha:g}, above the threshold {threshold:g}"
        )
    else:
        outcome = Outcome.FAIL if distance > threshold else Outcome.PASS
        word = "above" if outcome is Outcome.FAIL else "within"
        reason = (
            f"{outcome}: Jensen-Shannon distance (base 2) {distance:.4f} {word} threshold "
            f"{threshold:g} over {over}, {n_c} canary and {n_s} stable predictions"
        )
    return Check(name, outcome, distance, threshold, n_c, n_s, reason, details)


def compared_bins(
    n_canary: int, n_stable: int, observed: int, threshold: float, alpha: float
) -> int:
    """How many bins :func:`prediction_divergence` compares on (module docstring): at most
    ``observed``, one per :data:`MIN_PER_BIN` events of the smaller sample, and as many
    as keep :func:`null_distance` at or below ``threshold``; never fewer than 2 (or
    ``observed``, when fewer).

    >>> compared_bins(1000, 1000, 500, 0.1, 0.01), compared_bins(200, 800, 500, 0.85, 0.01)
    (14, 40)
    >>> compared_bins(100_000, 100_000, 500, 0.1, 0.01)
    500
    """
    most = min(observed, max(2, min(n_canary, n_stable) // MIN_PER_BIN))
    if most <= 2 or null_distance(n_canary, n_stable, most, alpha) <= threshold:
        return most
    # The noise floor grows with the bins: the largest count at or under the threshold.
    low, high = 2, most  # noise(low) may exceed it too: then 2, and the check holds
    while high - low > 1:
        mid = (low + high) // 2
        if null_distance(n_canary, n_stable, mid, alpha) <= threshold:
            low = mid
        else:
            high = mid
    return low


def merged(
    canary: FloatArray, stable: FloatArray, bins: int, ordered: bool
) -> tuple[FloatArray, FloatArray]:
    """Both histograms on at most ``bins`` non-empty bins, merged alike from the pooled
    counts: adjacent bins into groups of about equal pooled mass when ``ordered`` (bin
    counts), the rarest categories into one otherwise. Empty bins are dropped.

    >>> c, s = merged(np.array([1.0, 1, 0, 2, 6]), np.array([1.0, 3, 0, 2, 4]), 2, True)
    >>> c.tolist(), s.tolist()
    ([4.0, 6.0], [6.0, 4.0])
    >>> c, s = merged(np.array([9.0, 1, 2, 0]), np.array([8.0, 2, 0, 1]), 3, False)
    >>> c.tolist(), s.tolist()
    ([9.0, 1.0, 2.0], [8.0, 2.0, 1.0])
    """
    pooled = canary + stable
    filled = pooled > 0
    if int(np.count_nonzero(filled)) <= bins:
        return canary[filled], stable[filled]
    if ordered:
        # Each bin joins the group its pooled mass is centred in: contiguous groups.
        centre = (np.cumsum(pooled) - pooled / 2.0) / pooled.sum()
        group = np.minimum((centre * bins).astype(np.int64), bins - 1)
    else:
        # Categories have no order: the bins - 1 commonest keep their own, the rest share.
        rank = np.empty(len(pooled), dtype=np.int64)
        rank[np.argsort(-pooled, kind="stable")] = np.arange(len(pooled))
        group = np.minimum(rank, bins - 1)
    c = np.bincount(group, weights=canary, minlength=bins).astype(np.float64)
    s = np.bincount(group, weights=stable, minlength=bins).astype(np.float64)
    kept = (c + s) > 0
    return c[kept], s[kept]
