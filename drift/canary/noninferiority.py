"""Is the canary not worse than the stable version by more than a margin?

A one-sided non-inferiority test with three outcomes. With ``d`` the canary's
advantage in a metric and ``margin`` the loss one accepts:

- pass when the one-sided ``1 - alpha`` lower bound of ``d`` is above
  ``-margin`` (the canary is shown to be no worse than the margin);
- fail when the one-sided ``1 - alpha`` upper bound is below ``-margin``
  (the canary is shown to be worse than the margin);
- inconclusive otherwise, and always below ``min_n`` events per version.

Each error is therefore bounded by ``alpha``: a canary exactly at the margin
passes with probability at most about ``alpha``, and an equal canary fails
with a probability far below it (it would have to look worse than the margin
by a full interval half-width). Small samples give wide intervals and hence
inconclusive, never a coin flip. :func:`proportion_sample_size` and
:func:`mean_sample_size` say how many events per version give an equal canary
a given probability to pass; ``tests/unit/drift/test_canary_noninferiority.py``
pins the rates these functions claim.

The inputs are the performance sketches' own totals: ``correct`` and
``count`` of a :class:`~drift.performance.ClassificationSketch`, and for
absolute errors ``count``, ``sum_abs_err`` and ``sum_sq_err`` of a
:class:`~drift.performance.RegressionSketch` (``|e|**2 == e**2``, so the sum of
squared errors is the sum of squared absolute errors).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped, unused-ignore]

from drift.canary.check import Check, Outcome, check_alpha, check_count, check_margin, check_min_n

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


def wilson_interval(x: ArrayLike, n: ArrayLike, z: float) -> tuple[FloatArray, FloatArray]:
    """Wilson score bounds of a proportion ``x / n`` at normal quantile ``z`` (``n > 0``).

    >>> lo, hi = wilson_interval(10, 10, 1.96)
    >>> round(float(lo), 4), float(hi)
    (0.7225, 1.0)
    """
    xs, ns = np.asarray(x, dtype=np.float64), np.asarray(n, dtype=np.float64)
    z2 = z * z
    centre = (xs + z2 / 2.0) / (ns + z2)
    half = z / (ns + z2) * np.sqrt(np.maximum(xs * (ns - xs) / ns, 0.0) + z2 / 4.0)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def newcombe_interval(
    x_canary: ArrayLike, n_canary: ArrayLike, x_stable: ArrayLike, n_stable: ArrayLike, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """One-sided ``1 - alpha`` lower and upper bounds of ``p_canary - p_stable``.

    Newcombe's hybrid score interval (his method 10): each proportion's
    Wilson interval, combined as ``d - sqrt((p1 - l1)**2 + (u2 - p2)**2)`` and
    ``d + sqrt((u1 - p1)**2 + (p2 - l2)**2)``. Chosen over the Wald interval,
    whose standard error ``sqrt(p (1 - p) / n)`` collapses as ``p`` nears 1 (it
    is 0 for an all-correct sample): at the accuracies models have, Wald
    claims certainty it does not have and its non-inferiority test passes
    canaries at the margin far more often than ``alpha``. Wilson bounds stay
    inside [0, 1], are never of zero width, and keep coverage close to
    nominal down to small ``n`` (Newcombe 1998). Vectorised over its inputs;
    every ``n`` must be positive.

    >>> lo, hi = newcombe_interval(95, 100, 190, 200, 0.05)
    >>> round(float(lo), 4), round(float(hi), 4)
    (-0.053, 0.0408)

    References
    ----------
    Newcombe, R. G. (1998). Interval estimation for the difference between
    independent proportions: comparison of eleven methods. Statistics in
    Medicine 17(8), 873-890.
    """
    z = float(stats.norm.ppf(1.0 - alpha))
    xc, nc = np.asarray(x_canary, dtype=np.float64), np.asarray(n_canary, dtype=np.float64)
    xs, ns = np.asarray(x_stable, dtype=np.float64), np.asarray(n_stable, dtype=np.float64)
    pc, ps = xc / nc, xs / ns
    lc, uc = wilson_interval(xc, nc, z)
    ls, us = wilson_interval(xs, ns, z)
    d = pc - ps
    lower = d - np.sqrt((pc - lc) ** 2 + (us - ps) ** 2)
    upper = d + np.sqrt((uc - pc) ** 2 + (ps - ls) ** 2)
    return lower, upper


def welch_interval(
    n_canary: ArrayLike,
    sum_canary: ArrayLike,
    sum_sq_canary: ArrayLike,
    n_stable: ArrayLike,
    sum_stable: ArrayLike,
    sum_sq_stable: ArrayLike,
    alpha: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``mean_canary - mean_stable`` and its one-sided ``1 - alpha`` lower and upper bounds.

    Welch's t interval from each version's count, sum and sum of squares
    (every ``n >= 2``): unpooled variances, Welch-Satterthwaite degrees of
    freedom. With no spread on either side the bounds are the difference
    itself. Vectorised over its inputs.

    >>> d, lo, hi = welch_interval(4, 10.0, 30.0, 4, 8.0, 18.0, 0.05)
    >>> float(d), round(float(lo), 4), round(float(hi), 4)
    (0.5, -1.0344, 2.0344)

    References
    ----------
    Welch, B. L. (1947). The generalization of "Student's" problem when several
    different population variances are involved. Biometrika 34(1/2), 28-35.
    """
    nc, ns = np.asarray(n_canary, dtype=np.float64), np.asarray(n_stable, dtype=np.float64)
    mc, ms = np.asarray(sum_canary) / nc, np.asarray(sum_stable) / ns
    vc = np.maximum((np.asarray(sum_sq_canary) - nc * mc * mc) / (nc - 1.0), 0.0) / nc
    vs = np.maximum((np.asarray(sum_sq_stable) - ns * ms * ms) / (ns - 1.0), 0.0) / ns
    se2 = vc + vs
    spread = vc * vc / (nc - 1.0) + vs * vs / (ns - 1.0)
    df = np.divide(se2 * se2, spread, out=np.full(se2.shape, np.inf), where=spread > 0)
    half = stats.t.ppf(1.0 - alpha, df) * np.sqrt(se2)
    d = np.asarray(mc - ms, dtype=np.float64)
    return d, d - half, d + half


def operating_characteristic(
    accuracy_canary: float,
    accuracy_stable: float,
    n: int,
    *,
    margin: float,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Exact probabilities that :func:`accuracy_noninferiority` passes and fails.

    Both versions see ``n`` labelled events with these true accuracies; the
    sum runs over the binomial outcomes of both (tails below 1e-10 dropped),
    so the figures carry no Monte Carlo noise.

    >>> pass_p, fail_p = operating_characteristic(0.9, 0.9, 1000, margin=0.03)
    >>> round(pass_p, 3), fail_p < 1e-4
    (0.721, True)
    """
    check_margin(margin)
    check_alpha(alpha)
    for value, name in ((accuracy_canary, "accuracy_canary"), (accuracy_stable, "accuracy_stable")):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    xc, pmf_c = _support(n, accuracy_canary)
    xs, pmf_s = _support(n, accuracy_stable)
    lower, upper = newcombe_interval(xc[:, None], n, xs[None, :], n, alpha)
    weight = pmf_c[:, None] * pmf_s[None, :]
    return float(weight[lower > -margin].sum()), float(weight[upper < -margin].sum())


def _support(n: int, p: float) -> tuple[FloatArray, FloatArray]:
    lo, hi = stats.binom.ppf(1e-10, n, p), stats.binom.isf(1e-10, n, p)
    x = np.arange(lo, hi + 1.0)
    return x, np.asarray(stats.binom.pmf(x, n, p), dtype=np.float64)


def proportion_sample_size(
    accuracy: float, margin: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Events per version for an equal canary of this accuracy to pass with ``power``.

    Found by bisection on the exact pass probability
    (:func:`operating_characteristic`), bracketed by the textbook
    ``(z[1-alpha] + z[power])**2 * 2 p (1 - p) / margin**2``, which falls a
    little short: Wilson bounds below a high ``p`` are wider than Wald's. The
    exact probability is a sawtooth in ``n`` (the counts are discrete), so
    this is the smallest ``n`` the bisection meets with at least ``power``,
    not a guarantee for every larger ``n``: a few events more can cost a few
    thousandths of power.

    >>> proportion_sample_size(0.9, 0.03)
    1242
    """
    check_alpha(alpha)
    check_alpha(power, "power")
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"accuracy must be in (0, 1), got {accuracy}")
    if not margin > 0.0:
        raise ValueError(f"margin must be > 0 to size a test, got {margin}")

    def enough(n: int) -> bool:
        return (
            operating_characteristic(accuracy, accuracy, n, margin=margin, alpha=alpha)[0] >= power
        )

    z = float(stats.norm.ppf(1.0 - alpha) + stats.norm.ppf(power))
    hi = max(2, math.ceil(z * z * 2.0 * accuracy * (1.0 - accuracy) / (margin * margin)))
    while not enough(hi):
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:  # enough(hi) holds; below lo the search does not go
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def mean_sample_size(sd: float, margin: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Events per version for an equal canary to pass the mean-error test with ``power``.

    ``(z[1-alpha] + z[power])**2 * 2 sd**2 / margin**2`` rounded up, at least
    2, with ``sd`` the standard deviation of one event's absolute error.

    >>> mean_sample_size(1.0, 0.1)
    1237
    """
    check_alpha(alpha)
    check_alpha(power, "power")
    if not (math.isfinite(sd) and sd >= 0.0):
        raise ValueError(f"sd must be finite and >= 0, got {sd}")
    if not margin > 0.0:
        raise ValueError(f"margin must be > 0 to size a test, got {margin}")
    z = float(stats.norm.ppf(1.0 - alpha) + stats.norm.ppf(power))
    return max(2, math.ceil(z * z * 2.0 * sd * sd / (margin * margin)))


def _too_few(name: str, margin: float, n_canary: int, n_stable: int, min_n: int) -> Check:
    reason = (
        f"inconclusive: {n_canary} canary and {n_stable} stable events, "
        f"at least {min_n} per version needed"
    )
    return Check(name, Outcome.INCONCLUSIVE, None, margin, n_canary, n_stable, reason)


def _outcome(advantage_lower: float, advantage_upper: float, margin: float) -> Outcome:
    if advantage_lower > -margin:
        return Outcome.PASS
    if advantage_upper < -margin:
        return Outcome.FAIL
    return Outcome.INCONCLUSIVE


def accuracy_noninferiority(
    correct_canary: int,
    n_canary: int,
    correct_stable: int,
    n_stable: int,
    *,
    margin: float,
    alpha: float = 0.05,
    min_n: int = 100,
) -> Check:
    """Non-inferiority of the canary's accuracy, on a difference of proportions.

    ``value`` is ``p_canary - p_stable``; ``threshold`` is the margin (an
    absolute accuracy loss: 0.02 accepts a canary two points worse);
    ``details`` holds both accuracies and the :func:`newcombe_interval` bounds.

    >>> accuracy_noninferiority(1880, 2000, 1870, 2000, margin=0.02).outcome
    <Outcome.PASS: 'pass'>
    >>> accuracy_noninferiority(1700, 2000, 1870, 2000, margin=0.02).outcome
    <Outcome.FAIL: 'fail'>
    >>> accuracy_noninferiority(48, 50, 47, 50, margin=0.02).outcome
    <Outcome.INCONCLUSIVE: 'inconclusive'>
    """
    check_margin(margin)
    check_alpha(alpha)
    check_min_n(min_n)
    for value, name in ((n_canary, "n_canary"), (n_stable, "n_stable")):
        check_count(value, name)
    for correct, n, name in (
        (correct_canary, n_canary, "canary"),
        (correct_stable, n_stable, "stable"),
    ):
        if not 0 <= correct <= n:
            raise ValueError(f"correct_{name} must be in [0, n_{name}={n}], got {correct}")
    name = "accuracy_noninferiority"
    if min(n_canary, n_stable) < min_n:
        return _too_few(name, margin, n_canary, n_stable, min_n)
    lower, upper = (
        float(b)
        for b in newcombe_interval(correct_canary, n_canary, correct_stable, n_stable, alpha)
    )
    pc, ps = correct_canary / n_canary, correct_stable / n_stable
    d = pc - ps
    outcome = _outcome(lower, upper, margin)
    reason = (
        f"{outcome}: accuracy canary {pc:.4f} ({correct_canary}/{n_canary}) vs stable "
        f"{ps:.4f} ({correct_stable}/{n_stable}), difference {d:+.4f}, one-sided "
        f"{1 - alpha:.0%} bounds [{lower:+.4f}, {upper:+.4f}] vs -margin {-margin:+.4f}"
    )
    details = {"canary": pc, "stable": ps, "lower": lower, "upper": upper, "alpha": alpha}
    return Check(name, outcome, d, margin, n_canary, n_stable, reason, details)


def error_noninferiority(
    canary: tuple[int, float, float],
    stable: tuple[int, float, float],
    *,
    margin: float,
    alpha: float = 0.05,
    min_n: int = 100,
) -> Check:
    """Non-inferiority of the canary's mean absolute error, by Welch's t interval.

    ``canary`` and ``stable`` are ``(n, sum, sum_of_squares)`` of the absolute
    errors. ``value`` is ``mae_canary - mae_stable`` (positive is worse);
    ``threshold`` is the margin in the error's own units. Passes when the
    upper bound is below the margin, fails when the lower bound is above it.
    Absolute errors are skewed; the t interval's errors stay near ``alpha``
    from a few hundred events per version on, which ``min_n`` guards.

    >>> error_noninferiority((500, 500.0, 1000.0), (500, 510.0, 1040.0), margin=0.1).outcome
    <Outcome.PASS: 'pass'>
    >>> error_noninferiority((500, 700.0, 1600.0), (500, 510.0, 1040.0), margin=0.1).outcome
    <Outcome.FAIL: 'fail'>
    """
    check_margin(margin)
    check_alpha(alpha)
    check_min_n(min_n, least=2)
    for (n, total, total_sq), side in ((canary, "canary"), (stable, "stable")):
        check_count(n, f"n_{side}")
        if not (math.isfinite(total) and math.isfinite(total_sq) and total >= 0 and total_sq >= 0):
            raise ValueError(f"the {side} sums must be finite and >= 0, got {total}, {total_sq}")
    name = "mae_noninferiority"
    if min(canary[0], stable[0]) < min_n:
        return _too_few(name, margin, canary[0], stable[0], min_n)
    d_arr, lo_arr, hi_arr = welch_interval(*canary, *stable, alpha)
    d, lower, upper = float(d_arr), float(lo_arr), float(hi_arr)
    # The canary's advantage is -d: its bounds are the negated, swapped bounds of d.
    outcome = _outcome(-upper, -lower, margin)
    mc, ms = canary[1] / canary[0], stable[1] / stable[0]
    reason = (
        f"{outcome}: MAE canary {mc:.4g} (n={canary[0]}) vs stable {ms:.4g} (n={stable[0]}), "
        f"difference {d:+.4g}, one-sided {1 - alpha:.0%} bounds [{lower:+.4g}, {upper:+.4g}] "
        f"vs margin {margin:.4g}"
    )
    details = {"canary": mc, "stable": ms, "lower": lower, "upper": upper, "alpha": alpha}
    return Check(name, outcome, d, margin, canary[0], stable[0], reason, details)
