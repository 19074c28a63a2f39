"""Is the canary slower than the stable version at a latency percentile?

Each version's ``latency_ms`` values come as a :class:`~drift.latency_sketch.LatencySketch`
(what ingestion stores per window; events without a latency are not in it). The
ratio is of the sample percentiles (linear interpolation, NumPy's default, read
from the sketches within their 1 % relative error), and the verdict rests on
distribution-free bounds of each percentile from order statistics: the number of
values below the true ``q`` quantile is Binomial(n, q), whatever the latency
distribution, so no assumption about tails is needed. An order statistic is known
to lie within its sketch bucket, so each bound is the bucket's outer edge: the
bounds stay conservative, widened by at most the bucket's width (2 %). Sample
percentiles in the tail are noisy; with too few values the bounds are open and the
check holds.

Measured on seeded lognormal latencies (``tests/unit/drift/test_canary_latency.py``,
200 repetitions each), at the defaults (p95, ``max_ratio`` 1.5, ``alpha`` 0.05,
``min_n`` 200): equal versions never fail, and pass 62 % of the time with 200
values per version, every time with 1,000; a canary 2x slower never passes, fails
26 % of the time with 200 values per version and every time with 2,000; a canary
exactly at ``max_ratio`` holds 199 times in 200.
"""

from __future__ import annotations

import math

from scipy import stats  # type: ignore[import-untyped, unused-ignore]

from drift.canary.check import Check, Outcome, check_alpha, check_min_n
from drift.latency_sketch import FLOOR_MS, RELATIVE_ERROR, LatencySketch


def check_name(percentile: float) -> str:
    """The name of the check at ``percentile``: ``latency_p95_ratio``."""
    return f"latency_p{percentile:g}_ratio"


def quantile_bounds(sketch: LatencySketch, q: float, alpha: float) -> tuple[float, float]:
    """One-sided ``1 - alpha`` lower and upper bounds of the ``q`` quantile.

    The lower bound is the order statistic ``x[r]`` (1-based) with ``r`` the
    ``alpha`` quantile of Binomial(n, q), the upper one ``x[s]`` with ``s - 1`` its
    ``1 - alpha`` quantile, each taken at its sketch bucket's outer edge; a bound
    the sample cannot give is 0 (latencies are not negative) or infinity.

    >>> import numpy as np
    >>> lo, hi = quantile_bounds(LatencySketch.of(np.arange(1.0, 1001.0)), 0.95, 0.025)
    >>> 936.0 * 0.98 <= lo <= 936.0 <= 964.0 <= hi <= 964.0 * 1.02
    True
    """
    n = sketch.count
    r = int(stats.binom.ppf(alpha, n, q))
    s = int(stats.binom.ppf(1.0 - alpha, n, q)) + 1
    lower = sketch.order_statistic_bounds(r)[0] if r >= 1 else 0.0
    upper = sketch.order_statistic_bounds(s)[1] if s <= n else math.inf
    return lower, upper


def _ratio(num: float, den: float) -> float:
    # The sketch cannot tell latencies below its floor apart: they count as the floor.
    return max(num, FLOOR_MS) / max(den, FLOOR_MS)


def latency_ratio(
    canary: LatencySketch,
    stable: LatencySketch,
    *,
    percentile: float = 95.0,
    max_ratio: float = 1.5,
    alpha: float = 0.05,
    min_n: int = 200,
) -> Check:
    """Canary's over stable's latency percentile, against ``max_ratio``.

    ``value`` is the ratio of the sample percentiles. The ratio's one-sided
    ``1 - alpha`` bounds combine :func:`quantile_bounds` at ``alpha / 2``
    per version (canary upper over stable lower, and canary lower over
    stable upper). Pass when the upper bound is at most ``max_ratio``, fail
    when the lower bound is above it, inconclusive otherwise and below
    ``min_n`` values per version. Latencies below a microsecond (the sketch's floor)
    count as one microsecond in the ratio and its bounds: two such percentiles have
    ratio 1.

    >>> import numpy as np
    >>> stable = LatencySketch.of(np.arange(1.0, 1001.0))
    >>> latency_ratio(stable, stable).outcome
    <Outcome.PASS: 'pass'>
    >>> c = latency_ratio(LatencySketch.of(2.0 * np.arange(1.0, 1001.0)), stable)
    >>> c.outcome, round(c.value, 1)
    (<Outcome.FAIL: 'fail'>, 2.0)
    """
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    if not (math.isfinite(max_ratio) and max_ratio > 0.0):
        raise ValueError(f"max_ratio must be finite and > 0, got {max_ratio}")
    check_alpha(alpha)
    check_min_n(min_n)
    n_c, n_s = canary.count, stable.count
    name = check_name(percentile)
    if min(n_c, n_s) < min_n:
        reason = (
            f"inconclusive: {n_c} canary and {n_s} stable latencies, "
            f"at least {min_n} per version needed"
        )
        return Check(name, Outcome.INCONCLUSIVE, None, max_ratio, n_c, n_s, reason)
    q = percentile / 100.0
    pc, ps = canary.quantile(q), stable.quantile(q)
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
        f"{max_ratio:g} ({n_c} canary, {n_s} stable values)"
    )
    details = {
        "canary": pc,
        "stable": ps,
        "lower": lower,
        "upper": upper,
        "alpha": alpha,
        "relative_error": RELATIVE_ERROR,
    }
    return Check(name, outcome, ratio, max_ratio, n_c, n_s, reason, details)
