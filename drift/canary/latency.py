"""Is the canary slower than the stable version at a latency percentile?

No sketch in :mod:`drift` keeps latency, so the check takes each version's
``latency_ms`` values as arrays (non-finite values, events without a
latency, are dropped). The ratio is of sample percentiles (linear
interpolation, NumPy's default), and the verdict rests on distribution-free
bounds of each percentile from order statistics: the number of values below
the true ``q`` quantile is Binomial(n, q), whatever the latency distribution,
so no assumption about tails is needed. Sample percentiles in the tail are
noisy; with too few values the bounds are open and the check holds.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped, unused-ignore]

from drift.canary.check import Check, Outcome, check_alpha, check_min_n

FloatArray = npt.NDArray[np.float64]


def quantile_bounds(ordered: FloatArray, q: float, alpha: float) -> tuple[float, float]:
    """One-sided ``1 - alpha`` lower and upper bounds of the ``q`` quantile.

    ``ordered`` is a sorted sample. The lower bound is the order statistic
    ``x[r]`` (1-based) with ``r`` the ``alpha`` quantile of Binomial(n, q),
    the upper one ``x[s]`` with ``s - 1`` its ``1 - alpha`` quantile; a bound
    the sample cannot give is 0 (latencies are not negative) or infinity.

    >>> quantile_bounds(np.arange(1.0, 1001.0), 0.95, 0.025)
    (936.0, 964.0)
    """
    n = ordered.size
    r = int(stats.binom.ppf(alpha, n, q))
    s = int(stats.binom.ppf(1.0 - alpha, n, q)) + 1
    lower = float(ordered[r - 1]) if r >= 1 else 0.0
    upper = float(ordered[s - 1]) if s <= n else math.inf
    return lower, upper


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 1.0 if num == 0 else math.inf


def _finite(values: npt.ArrayLike, side: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = np.sort(arr[np.isfinite(arr)])
    if arr.size and arr[0] < 0:
        raise ValueError(f"{side} latencies must be >= 0, got {arr[0]}")
    return arr


def latency_ratio(
    canary_ms: npt.ArrayLike,
    stable_ms: npt.ArrayLike,
    *,
    percentile: float = 95.0,
    max_ratio: float = 1.2,
    alpha: float = 0.05,
    min_n: int = 200,
) -> Check:
    """Canary's over stable's latency percentile, against ``max_ratio``.

    ``value`` is the ratio of the sample percentiles. The ratio's one-sided
    ``1 - alpha`` bounds combine :func:`quantile_bounds` at ``alpha / 2``
    per version (canary upper over stable lower, and canary lower over
    stable upper). Pass when the upper bound is at most ``max_ratio``, fail
    when the lower bound is above it, inconclusive otherwise and below
    ``min_n`` values per version. Two zero percentiles have ratio 1.

    >>> stable = np.arange(1.0, 1001.0)
    >>> latency_ratio(stable, stable).outcome
    <Outcome.PASS: 'pass'>
    >>> c = latency_ratio(1.5 * stable, stable)
    >>> c.outcome, round(c.value, 6)
    (<Outcome.FAIL: 'fail'>, 1.5)
    """
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    if not (math.isfinite(max_ratio) and max_ratio > 0.0):
        raise ValueError(f"max_ratio must be finite and > 0, got {max_ratio}")
    check_alpha(alpha)
    check_min_n(min_n)
    canary, stable = _finite(canary_ms, "canary"), _finite(stable_ms, "stable")
    name = f"latency_p{percentile:g}_ratio"
    if min(canary.size, stable.size) < min_n:
        reason = (
            f"inconclusive: {canary.size} canary and {stable.size} stable latencies, "
            f"at least {min_n} per version needed"
        )
        return Check(name, Outcome.INCONCLUSIVE, None, max_ratio, canary.size, stable.size, reason)
    q = percentile / 100.0
    pc, ps = float(np.quantile(canary, q)), float(np.quantile(stable, q))
    lo_c, hi_c = quantile_bounds(canary, q, alpha / 2.0)
    lo_s, hi_s = quantile_bounds(stable, q, alpha / 2.0)
    lower, upper = _ratio(lo_c, hi_s), _ratio(hi_c, lo_s)
    ratio = _ratio(pc, ps)
    if upper <= max_ratio:
        outcome = Outcome.PASS
    elif lower > max_ratio:
        outcome = Outcome.FAIL
    else:
        outcome = Outcome.INCONCLUSIVE
    reason = (
        f"{outcome}: p{percentile:g} latency canary {pc:.4g} ms vs stable {ps:.4g} ms, ratio "
        f"{ratio:.3f}, one-sided {1 - alpha:.0%} bounds [{lower:.3f}, {upper:.3f}] vs max "
        f"{max_ratio:g} ({canary.size} canary, {stable.size} stable values)"
    )
    details = {"canary": pc, "stable": ps, "lower": lower, "upper": upper, "alpha": alpha}
    return Check(name, outcome, ratio, max_ratio, canary.size, stable.size, reason, details)
