"""Does the canary get the share of events the router was told to send it?

A sample-ratio mismatch (SRM) means the split or the version stamping is
broken, and then no other canary check can be trusted: the events each
version saw are no longer a random split of the same traffic.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped, unused-ignore]

from drift.canary.check import Check, Outcome, check_alpha, check_count

FloatArray = npt.NDArray[np.float64]

# Cochran's rule for the chi-square approximation: every expected count at least 5.
MIN_EXPECTED = 5.0


def srm_p_value(
    stable_count: npt.ArrayLike, canary_count: npt.ArrayLike, canary_share: float
) -> tuple[FloatArray, FloatArray]:
    """Pearson's chi-square statistic (1 degree of freedom) and its p-value.

    Expected counts are the total split at ``canary_share``; both must be
    positive. Vectorised over the counts.

    >>> stat, p = srm_p_value(5500, 4500, 0.5)
    >>> float(stat), float(p) < 1e-20
    (100.0, True)
    """
    s = np.asarray(stable_count, dtype=np.float64)
    c = np.asarray(canary_count, dtype=np.float64)
    total = s + c
    e_c, e_s = total * canary_share, total * (1.0 - canary_share)
    stat = (c - e_c) ** 2 / e_c + (s - e_s) ** 2 / e_s
    return stat, np.asarray(stats.chi2.sf(stat, 1), dtype=np.float64)


def sample_ratio(
    stable_count: int,
    canary_count: int,
    canary_share: float,
    *,
    alpha: float = 0.001,
    min_expected: float = MIN_EXPECTED,
) -> Check:
    """Chi-square goodness of fit of the observed split to the router's weight.

    ``canary_share`` is the canary's weight as a fraction of traffic
    (``canary / (stable + canary)`` of the router's weights). ``value`` is the
    p-value and ``threshold`` is ``alpha``: fail when ``p < alpha``. The
    default 0.001 is the usual SRM level: the check runs at every step of
    every rollout, and a false alarm pauses a healthy one. Inconclusive when
    either expected count is below ``min_expected``, which also covers a
    weight of 0 or 1, where there is no split to check. The chi-square
    p-value is approximate: summed exactly over the binomial outcomes, the
    false-alarm rate at 10,000 events is 0.00105 at a canary share of 0.05 and
    0.00100 at 0.25 and 0.5 (0.00121 at 1,000 events and share 0.05).

    >>> sample_ratio(5000, 5000, 0.5).outcome
    <Outcome.PASS: 'pass'>
    >>> c = sample_ratio(5500, 4500, 0.5)
    >>> c.outcome, c.details["observed_share"]
    (<Outcome.FAIL: 'fail'>, 0.45)
    >>> sample_ratio(30, 2, 0.05).outcome
    <Outcome.INCONCLUSIVE: 'inconclusive'>
    """
    check_count(stable_count, "stable_count")
    check_count(canary_count, "canary_count")
    check_alpha(alpha)
    if not 0.0 <= canary_share <= 1.0:
        raise ValueError(f"canary_share must be in [0, 1], got {canary_share}")
    if not (math.isfinite(min_expected) and min_expected > 0.0):
        raise ValueError(f"min_expected must be finite and > 0, got {min_expected}")
    total = stable_count + canary_count
    expected_c, expected_s = total * canary_share, total * (1.0 - canary_share)
    details = {"expected_share": canary_share, "expected_canary": expected_c}
    if total:
        details["observed_share"] = canary_count / total
    if min(expected_c, expected_s) < min_expected:
        reason = (
            f"inconclusive: {total} events split at canary share {canary_share:g} expect "
            f"{expected_c:.2f} canary and {expected_s:.2f} stable, at least "
            f"{min_expected:g} each needed"
        )
        return Check(
            "sample_ratio",
            Outcome.INCONCLUSIVE,
            None,
            alpha,
            canary_count,
            stable_count,
            reason,
            details,
        )
    stat_arr, p_arr = srm_p_value(stable_count, canary_count, canary_share)
    stat, p = float(stat_arr), float(p_arr)
    outcome = Outcome.FAIL if p < alpha else Outcome.PASS
    reason = (
        f"{outcome}: canary share {canary_count / total:.4f} ({canary_count}/{total}) vs "
        f"expected {canary_share:.4f}, chi-square {stat:.3g}, p={p:.3g} vs alpha {alpha:g}"
    )
    details |= {"chi_square": stat, "p_value": p}
    return Check("sample_ratio", outcome, p, alpha, canary_count, stable_count, reason, details)
