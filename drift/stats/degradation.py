"""Has a window's model performance fallen below the reference performance?

One-sided tests on window totals as kept by :mod:`drift.performance`: only a
worse window can be flagged, a better one never is. Below ``min_labeled``
labelled events a window gets no verdict (``degraded is None``): labels arrive
late and partially, and a handful of them would make the test fire on noise.
Both tests rest on the normal approximation, which the minimum also protects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats  # type: ignore[import-untyped, unused-ignore]


@dataclass(frozen=True, slots=True)
class DegradationVerdict:
    """The outcome of one degradation test on one window.

    ``statistic`` is the z-score, positive when the window is worse than the
    reference; ``p_value`` is its one-sided upper tail. Both are None, as is
    ``degraded``, when the window has too few labels to decide.
    """

    metric: str
    reference: float
    current: float | None
    n: int
    statistic: float | None
    p_value: float | None
    degraded: bool | None
    reason: str


def _check_common(n: int, alpha: float, min_labeled: int) -> None:
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_labeled < 1:
        raise ValueError(f"min_labeled must be at least 1, got {min_labeled}")


def _verdict(
    metric: str, reference: float, current: float, n: int, excess: float, se: float, alpha: float
) -> DegradationVerdict:
    if se > 0:
        z = excess / se
        p = float(stats.norm.sf(z))
    else:
        # No spread at all: any excess is certain, no excess cannot be evidence.
        z, p = (math.inf, 0.0) if excess > 0 else (0.0, 1.0)
    degraded = p < alpha
    word = "degraded" if degraded else "not degraded"
    reason = (
        f"{word}: {metric} {current:.4g} vs reference {reference:.4g} over {n} labelled "
        f"events (z={z:.3g}, one-sided p={p:.3g}, alpha={alpha:g})"
    )
    return DegradationVerdict(metric, reference, current, n, z, p, degraded, reason)


def _insufficient(
    metric: str, reference: float, current: float | None, n: int, min_labeled: int
) -> DegradationVerdict:
    reason = f"insufficient labels: {n} labelled events, at least {min_labeled} needed"
    return DegradationVerdict(metric, reference, current, n, None, None, None, reason)


def accuracy_drop(
    reference_accuracy: float,
    reference_n: int | None,
    correct: int,
    n: int,
    *,
    alpha: float = 0.05,
    min_labeled: int = 200,
) -> DegradationVerdict:
    """One-sided z-test that the window's accuracy is below the reference accuracy.

    With ``reference_n`` (the labelled events behind ``reference_accuracy``)
    both accuracies are estimates and the standard two-proportion z-test with
    the pooled proportion is used. With ``reference_n=None`` the reference is a
    fixed, configured value ``p0`` and the one-sample score test applies,
    ``z = (p0 - correct/n) / sqrt(p0 (1 - p0) / n)``. The p-value is the upper
    tail of the standard normal at ``z``; the window is degraded when it is
    below ``alpha``.

    Examples
    --------
    >>> v = accuracy_drop(0.90, 5000, correct=1700, n=2000)
    >>> v.degraded, round(v.statistic, 2), v.p_value < 1e-6
    (True, 5.94, True)
    >>> v = accuracy_drop(0.90, None, correct=1785, n=2000)
    >>> v.degraded, round(v.statistic, 3), round(v.p_value, 3)
    (False, 1.118, 0.132)
    >>> accuracy_drop(0.90, None, correct=90, n=100).degraded is None
    True

    References
    ----------
    Agresti, A. (2013). Categorical Data Analysis, 3rd ed., sections 1.4.1
    (score test for a proportion) and 3.1.3 (difference of proportions). Wiley.
    Fleiss, J. L., Levin, B. and Paik, M. C. (2003). Statistical Methods for
    Rates and Proportions, 3rd ed., section 2.5. Wiley.
    """
    _check_common(n, alpha, min_labeled)
    if not 0 <= reference_accuracy <= 1:
        raise ValueError(f"reference_accuracy must be in [0, 1], got {reference_accuracy}")
    if reference_n is not None and reference_n < 1:
        raise ValueError(f"reference_n must be positive or None, got {reference_n}")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must be in [0, n={n}], got {correct}")
    current = correct / n if n else None
    if current is None or n < min_labeled:
        return _insufficient("accuracy", reference_accuracy, current, n, min_labeled)
    if reference_n is None:
        var = reference_accuracy * (1 - reference_accuracy) / n
    else:
        pooled = (reference_accuracy * reference_n + correct) / (reference_n + n)
        var = pooled * (1 - pooled) * (1 / reference_n + 1 / n)
    excess = reference_accuracy - current
    return _verdict("accuracy", reference_accuracy, current, n, excess, math.sqrt(var), alpha)


def error_increase(
    reference_mse: float,
    reference_n: int | None,
    reference_var: float | None,
    sum_sq_err: float,
    sum_sq_sq_err: float,
    n: int,
    *,
    alpha: float = 0.05,
    min_labeled: int = 200,
) -> DegradationVerdict:
    """One-sided z-test that the window's mean squared error exceeds the reference MSE.

    The window's MSE is ``sum_sq_err / n``; its standard error comes from the
    sample variance of the squared errors, ``s^2 = (sum_sq_sq_err - n mse^2) /
    (n - 1)``. With ``reference_n`` and ``reference_var`` (the reference's
    variance of squared errors) the reference is an estimate too and its
    variance is added, unpooled, as in Welch's test; without both it is a fixed
    value. ``z = (mse - reference_mse) / sqrt(s^2 / n [+ reference_var /
    reference_n])``, p-value the standard normal upper tail. Squared errors are
    heavily right-skewed, so the normal approximation needs a few hundred
    events: keep ``min_labeled`` well above the default if errors have heavy
    tails.

    Examples
    --------
    >>> v = error_increase(1.0, None, None, sum_sq_err=2400.0, sum_sq_sq_err=9000.0, n=2000)
    >>> v.current, v.degraded, round(v.statistic, 2)
    (1.2, True, 5.11)
    >>> v = error_increase(1.0, 5000, 2.0, sum_sq_err=2050.0, sum_sq_sq_err=6200.0, n=2000)
    >>> v.degraded, round(v.p_value, 3)
    (False, 0.254)

    References
    ----------
    Welch, B. L. (1947). The generalization of "Student's" problem when several
    different population variances are involved. Biometrika 34(1/2), 28-35.
    Casella, G. and Berger, R. L. (2002). Statistical Inference, 2nd ed.,
    section 10.3 (large-sample tests). Duxbury.
    """
    _check_common(n, alpha, min_labeled)
    if not math.isfinite(reference_mse) or reference_mse < 0:
        raise ValueError(f"reference_mse must be finite and non-negative, got {reference_mse}")
    if (reference_n is None) != (reference_var is None):
        raise ValueError("reference_n and reference_var must be given together or not at all")
    if reference_n is not None and reference_n < 2:
        raise ValueError(f"reference_n must be at least 2, got {reference_n}")
    if reference_var is not None and not reference_var >= 0:
        raise ValueError(f"reference_var must be non-negative, got {reference_var}")
    current = sum_sq_err / n if n else None
    if current is None or n < min_labeled:
        return _insufficient("mse", reference_mse, current, n, min_labeled)
    window_var = max((sum_sq_sq_err - n * current * current) / (n - 1), 0.0) if n > 1 else 0.0
    var = window_var / n
    if reference_n is not None and reference_var is not None:
        var += reference_var / reference_n
    excess = current - reference_mse
    return _verdict("mse", reference_mse, current, n, excess, math.sqrt(var), alpha)
