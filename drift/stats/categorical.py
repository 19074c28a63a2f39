"""Drift statistics of one categorical feature, on value counts.

Counts are mappings from category to number of (non-null) occurrences, as
kept by :class:`drift.sketch.CategoricalSketch`. Categories seen on one side
only count as zero on the other. Definitions follow Evidently 0.7
(``evidently.legacy.calculations.stattests``) so that decisions agree: the
chi-square test expects the reference frequencies scaled to the current size,
the Z-test compares the share of all but the first category (sorted), and the
distances work on shares of non-null values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped, unused-ignore]

from drift.stats import numerical

Counts = Mapping[str, int]
FloatArray = npt.NDArray[np.float64]


def aligned(reference: Counts, current: Counts) -> tuple[list[str], FloatArray, FloatArray]:
    """The union of categories, sorted, with both sides' counts in that order.

    >>> aligned({"a": 2, "b": 1}, {"c": 4})
    (['a', 'b', 'c'], array([2., 1., 0.]), array([0., 0., 4.]))
    """
    keys = sorted(reference.keys() | current.keys())
    ref = np.array([reference.get(k, 0) for k in keys], dtype=np.float64)
    cur = np.array([current.get(k, 0) for k in keys], dtype=np.float64)
    return keys, ref, cur


def _shares(reference: Counts, current: Counts) -> tuple[FloatArray, FloatArray]:
    _, ref, cur = aligned(reference, current)
    if ref.sum() == 0 or cur.sum() == 0:
        raise ValueError("a categorical statistic needs values on both sides")
    return ref / ref.sum(), cur / cur.sum()


def chi_square(reference: Counts, current: Counts) -> tuple[float, float]:
    """Pearson's chi-square goodness-of-fit of the current counts to the reference.

    Expected counts are the reference counts times ``n_current / n_reference``
    (Evidently's ``chisquare`` stattest); ``k - 1`` degrees of freedom. A
    category absent from the reference but present now makes the statistic
    infinite and the p-value 0, as :func:`scipy.stats.chisquare` would. With a
    single category there is nothing to test: ``(0.0, 1.0)``.

    Examples
    --------
    >>> stat, p = chi_square({"a": 50, "b": 50}, {"a": 30, "b": 70})
    >>> round(stat, 3), round(p, 5)
    (16.0, 6e-05)

    References
    ----------
    Pearson, K. (1900). On the criterion that a given system of deviations from
    the probable... Philosophical Magazine 50(302), 157-175.
    """
    _, ref, cur = aligned(reference, current)
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref == 0 or n_cur == 0:
        raise ValueError("chi-square needs values on both sides")
    if len(ref) < 2:
        return 0.0, 1.0
    expected = ref * (n_cur / n_ref)
    if np.any((expected == 0) & (cur > 0)):
        return math.inf, 0.0
    stat = float(np.sum((cur - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, len(ref) - 1))


def z_test(reference: Counts, current: Counts) -> tuple[float, float]:
    """Two-proportion Z-test on the share of values other than the first category.

    Categories are sorted and the first one is "0", every other one "1", as
    in Evidently's ``z`` stattest; when both sides hold the same single value
    the p-value is 1. Two-sided, pooled variance.

    Examples
    --------
    >>> z, p = z_test({"no": 60, "yes": 40}, {"no": 40, "yes": 60})
    >>> round(z, 3), round(p, 5)
    (-2.828, 0.00468)

    References
    ----------
    Fleiss, J. L., Levin, B. and Paik, M. C. (2003). Statistical Methods for
    Rates and Proportions, 3rd ed., section 2.5. Wiley.
    """
    keys, ref, cur = aligned(reference, current)
    n1, n2 = float(ref.sum()), float(cur.sum())
    if n1 == 0 or n2 == 0:
        raise ValueError("the Z-test needs values on both sides")
    if len(keys) == 1:
        return 0.0, 1.0
    p1, p2 = (n1 - ref[0]) / n1, (n2 - cur[0]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = float((p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)))
    return z, float(2 * stats.norm.sf(abs(z)))


def jensen_shannon(reference: Counts, current: Counts) -> float:
    """Jensen-Shannon distance (natural logarithm) between the category shares.

    Examples
    --------
    >>> round(jensen_shannon({"a": 1, "b": 1}, {"b": 1, "c": 1}), 4)
    0.5887

    References
    ----------
    Lin, J. (1991). Divergence measures based on the Shannon entropy. IEEE
    Transactions on Information Theory 37(1), 145-151.
    """
    return numerical.jensen_shannon(*_shares(reference, current))


def psi(reference: Counts, current: Counts) -> float:
    """Population stability index of the category shares (empty shares filled as Evidently).

    Examples
    --------
    >>> round(psi({"a": 50, "b": 50}, {"a": 25, "b": 75}), 4)
    0.2747

    References
    ----------
    Siddiqi, N. (2006). Credit Risk Scorecards, ch. 8. Wiley.
    """
    return numerical.psi(*_shares(reference, current))


def kl_divergence(reference: Counts, current: Counts) -> float:
    """Kullback-Leibler divergence of the category shares (empty shares filled as Evidently).

    Examples
    --------
    >>> round(kl_divergence({"a": 50, "b": 50}, {"a": 25, "b": 75}), 4)
    0.1438

    References
    ----------
    Kullback, S. and Leibler, R. A. (1951). On information and sufficiency.
    Annals of Mathematical Statistics 22(1), 79-86.
    """
    return numerical.kl_divergence(*_shares(reference, current))


def hellinger(reference: Counts, current: Counts) -> float:
    """Hellinger distance of the category shares.

    Examples
    --------
    >>> round(hellinger({"a": 50, "b": 50}, {"a": 25, "b": 75}), 4)
    0.1846

    References
    ----------
    Hellinger, E. (1909). J. Reine Angew. Math. 136, 210-271.
    """
    return numerical.hellinger(*_shares(reference, current))
