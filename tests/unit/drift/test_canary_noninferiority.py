"""Non-inferiority of a canary: published intervals, pinned error rates and power, edges.

Error rates are measured over seeded repetitions, vectorised, and cross-checked
against the exact binomial sums of ``operating_characteristic``. A Monte Carlo
rate over ``REPS`` repetitions has a standard error of ``sqrt(r (1 - r) / REPS)``;
bounds that a correct test meets only up to that noise say so.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from drift.canary import (
    Outcome,
    accuracy_noninferiority,
    error_noninferiority,
    mean_sample_size,
    newcombe_interval,
    operating_characteristic,
    proportion_sample_size,
    welch_interval,
)

ALPHA = 0.05
# Newcombe's interval is approximate: its exact one-sided size at the margin swings
# around alpha by a few thousandths with n (0.0497 to 0.0501 below), never by 5 %.
SIZE_CAP = 1.05 * ALPHA
REPS = 4000
# Three Monte Carlo standard errors of a rate near alpha.
MC_SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)
# (accuracy of both versions, margin): a usual model, and one near 1 where Wald breaks.
SCENARIOS = [(0.9, 0.03), (0.97, 0.02)]


# -- intervals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((10, 10, 0, 20), (0.6791, 1.0000)),
    ],
)
def test_newcombe_interval_matches_the_published_table(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    # Newcombe (1998), Table II, method 10: two-sided 95 % is one-sided 97.5 % per bound.
    lower, upper = newcombe_interval(*counts, 0.025)
    assert (round(float(lower), 4), round(float(upper), 4)) == expected


def test_welch_interval_matches_scipy_on_the_raw_samples() -> None:
    rng = np.random.default_rng(1)
    a, b = np.abs(rng.normal(0, 1.0, 300)), np.abs(rng.normal(0, 1.3, 200))
    d, lower, upper = welch_interval(
        a.size, a.sum(), (a * a).sum(), b.size, b.sum(), (b * b).sum(), ALPHA
    )
    greater = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    less = stats.ttest_ind(a, b, equal_var=False, alternative="less")
    assert float(d) == pytest.approx(a.mean() - b.mean())
    assert float(lower) == pytest.approx(greater.confidence_interval(1 - ALPHA).low)
    assert float(upper) == pytest.approx(less.confidence_interval(1 - ALPHA).high)


# -- accuracy: error rates and power -----------------------------------------------------


def _rates(p_canary: float, p_stable: float, n: int, margin: float) -> tuple[float, float]:
    """Monte Carlo pass and fail rates of the accuracy test, ``REPS`` seeded repetitions."""
    rng = np.random.default_rng(2026)
    lower, upper = newcombe_interval(
        rng.binomial(n, p_canary, REPS), n, rng.binomial(n, p_stable, REPS), n, ALPHA
    )
    return float(np.mean(lower > -margin)), float(np.mean(upper < -margin))


@pytest.mark.parametrize(("p", "margin"), SCENARIOS)
def test_equal_versions_pass_with_the_power_the_sample_size_promises(
    p: float, margin: float
) -> None:
    n = proportion_sample_size(p, margin, alpha=ALPHA, power=0.8)
    exact_pass, exact_fail = operating_characteristic(p, p, n, margin=margin, alpha=ALPHA)
    mc_pass, mc_fail = _rates(p, p, n, margin)
    # Measured: p=0.9 m=0.03 n=1242 pass 0.801 (exact); p=0.97 m=0.02 n=933 pass 0.802.
    assert exact_pass >= 0.8
    assert abs(mc_pass - exact_pass) <= 4 * math.sqrt(0.8 * 0.2 / REPS)
    # An equal canary fails only if it looks worse by a margin plus a half-width.
    assert exact_fail <= ALPHA and mc_fail <= ALPHA
    assert exact_fail < 1e-4 and mc_fail <= 1e-3  # measured exact 1.7e-05, 1.4e-05


@pytest.mark.parametrize(("p", "margin"), SCENARIOS)
def test_a_canary_at_the_margin_passes_at_most_alpha_of_the_time(p: float, margin: float) -> None:
    n = proportion_sample_size(p, margin, alpha=ALPHA)
    exact_pass, _ = operating_characteristic(p - margin, p, n, margin=margin, alpha=ALPHA)
    mc_pass, _ = _rates(p - margin, p, n, margin)
    # Measured exact: 0.0501 (p=0.9) and 0.0497 (p=0.97).
    assert exact_pass <= SIZE_CAP
    assert mc_pass <= SIZE_CAP + MC_SLACK


@pytest.mark.parametrize(("p", "margin"), SCENARIOS)
def test_a_canary_worse_by_twice_the_margin_fails_and_never_passes(p: float, margin: float) -> None:
    n = proportion_sample_size(p, margin, alpha=ALPHA)
    exact_pass, exact_fail = operating_characteristic(p - 2 * margin, p, n, margin=margin)
    mc_pass, mc_fail = _rates(p - 2 * margin, p, n, margin)
    # Measured exact fail: 0.72 (p=0.9), 0.64 (p=0.97); the rest is inconclusive.
    assert exact_fail >= 0.6 and abs(mc_fail - exact_fail) <= 4 * math.sqrt(0.25 / REPS)
    assert exact_pass < 1e-3 and mc_pass < 1e-3
    # Three margins worse, a step at this size fails almost surely.
    assert operating_characteristic(p - 3 * margin, p, n, margin=margin)[1] >= 0.97


def test_newcombe_holds_alpha_at_high_accuracy_and_small_n_where_wald_does_not() -> None:
    # p = 0.98, margin 0.02, 100 events each: exact pass probability at the margin.
    n, p, margin = 100, 0.98, 0.02
    x = np.arange(n + 1.0)
    pmf_c, pmf_s = stats.binom.pmf(x, n, p - margin), stats.binom.pmf(x, n, p)
    weight = pmf_c[:, None] * pmf_s[None, :]
    pc, ps = x[:, None] / n, x[None, :] / n
    z = stats.norm.ppf(1 - ALPHA)
    wald_lower = pc - ps - z * np.sqrt(pc * (1 - pc) / n + ps * (1 - ps) / n)
    wald = float(weight[wald_lower > -margin].sum())
    newcombe, _ = operating_characteristic(p - margin, p, n, margin=margin, alpha=ALPHA)
    assert wald > 1.4 * ALPHA  # measured 0.080
    assert newcombe <= ALPHA  # measured 0.047


@pytest.mark.parametrize("n", [20, 50, 200, 1000])
def test_errors_stay_bounded_at_every_sample_size(n: int) -> None:
    # No minimum: the interval alone must keep both errors under alpha at any n.
    p, margin = 0.95, 0.03
    at_margin_pass, _ = operating_characteristic(p - margin, p, n, margin=margin)
    _, equal_fail = operating_characteristic(p, p, n, margin=margin)
    assert at_margin_pass <= SIZE_CAP and equal_fail <= ALPHA


def test_small_samples_are_inconclusive_whatever_they_show() -> None:
    rng = np.random.default_rng(3)
    outcomes = {
        accuracy_noninferiority(
            int(rng.binomial(99, pc)), 99, int(rng.binomial(500, 0.9)), 500, margin=0.02
        ).outcome
        for pc in (0.5, 0.9, 1.0)
        for _ in range(20)
    }
    assert outcomes == {Outcome.INCONCLUSIVE}
    # Above the minimum, 120 events cannot tell 0.02 apart: still inconclusive, no coin flip.
    check = accuracy_noninferiority(108, 120, 108, 120, margin=0.02, min_n=100)
    assert check.outcome is Outcome.INCONCLUSIVE
    assert "0.9000 (108/120)" in check.reason and "-margin -0.0200" in check.reason


def test_the_check_decides_as_its_vectorised_bounds() -> None:
    rng = np.random.default_rng(4)
    n, margin = 800, 0.03
    xc, xs = rng.binomial(n, 0.88, 300), rng.binomial(n, 0.9, 300)
    lower, upper = newcombe_interval(xc, n, xs, n, ALPHA)
    expected = np.where(lower > -margin, "pass", np.where(upper < -margin, "fail", "inconclusive"))
    got = [
        str(accuracy_noninferiority(int(a), n, int(b), n, margin=margin).outcome)
        for a, b in zip(xc, xs, strict=True)
    ]
    assert got == expected.tolist()
    assert set(got) == {"pass", "fail", "inconclusive"}


# -- accuracy: edges ---------------------------------------------------------------------


def test_all_correct_versions_give_finite_bounds_and_a_verdict_by_margin() -> None:
    # Wilson's bound below 100/100 is 0.9737 at 95 %: the difference is bounded by -0.0263.
    tight = accuracy_noninferiority(100, 100, 100, 100, margin=0.02)
    loose = accuracy_noninferiority(100, 100, 100, 100, margin=0.03)
    assert tight.outcome is Outcome.INCONCLUSIVE and loose.outcome is Outcome.PASS
    assert tight.value == 0.0 and tight.details["lower"] == pytest.approx(-0.02634, abs=1e-5)
    zero = accuracy_noninferiority(0, 500, 0, 500, margin=0.0)
    assert zero.outcome is Outcome.INCONCLUSIVE
    assert all(math.isfinite(v) for v in zero.details.values())


def test_no_events_is_inconclusive_with_no_value() -> None:
    check = accuracy_noninferiority(0, 0, 0, 0, margin=0.02)
    assert check.outcome is Outcome.INCONCLUSIVE and check.value is None
    assert "0 canary and 0 stable events, at least 100 per version" in check.reason
    reg = error_noninferiority((0, 0.0, 0.0), (0, 0.0, 0.0), margin=0.1)
    assert reg.outcome is Outcome.INCONCLUSIVE and reg.value is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"margin": -0.01}, "margin must be finite and >= 0, got -0.01"),
        ({"margin": math.nan}, "margin must be finite"),
        ({"margin": 0.02, "alpha": 0.0}, r"alpha must be in \(0, 1\), got 0.0"),
        ({"margin": 0.02, "alpha": 1.5}, r"alpha must be in \(0, 1\), got 1.5"),
        ({"margin": 0.02, "min_n": 0}, "min_n must be >= 1, got 0"),
    ],
)
def test_invalid_arguments_are_refused_by_name(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        accuracy_noninferiority(90, 100, 90, 100, **kwargs)  # type: ignore[arg-type]


def test_invalid_counts_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"correct_canary must be in \[0, n_canary=100\], got 101"):
        accuracy_noninferiority(101, 100, 90, 100, margin=0.02)
    with pytest.raises(ValueError, match="n_stable must be >= 0, got -1"):
        accuracy_noninferiority(0, 100, 0, -1, margin=0.02)
    with pytest.raises(ValueError, match="the stable sums must be finite and >= 0"):
        error_noninferiority((200, 1.0, 1.0), (200, math.inf, 1.0), margin=0.1)
    with pytest.raises(ValueError, match="min_n must be >= 2, got 1"):
        error_noninferiority((200, 1.0, 1.0), (200, 1.0, 1.0), margin=0.1, min_n=1)
    with pytest.raises(ValueError, match="margin must be > 0 to size a test"):
        proportion_sample_size(0.9, 0.0)
    with pytest.raises(ValueError, match=r"power must be in \(0, 1\)"):
        mean_sample_size(1.0, 0.1, power=1.0)


# -- absolute error (Welch) --------------------------------------------------------------

# |N(0, s)| has mean s * sqrt(2 / pi) and standard deviation s * sqrt(1 - 2 / pi).
HALF_NORMAL_MEAN, HALF_NORMAL_SD = math.sqrt(2 / math.pi), math.sqrt(1 - 2 / math.pi)
REG_REPS = 2000


def _error_rates(worse_by: float, margin: float, n: int) -> tuple[float, float]:
    """Pass and fail rates when the canary's mean absolute error is higher by ``worse_by``."""
    rng = np.random.default_rng(5)
    scale = (HALF_NORMAL_MEAN + worse_by) / HALF_NORMAL_MEAN
    canary = np.abs(rng.normal(0.0, scale, (REG_REPS, n)))
    stable = np.abs(rng.normal(0.0, 1.0, (REG_REPS, n)))
    _, lower, upper = welch_interval(
        n, canary.sum(1), (canary**2).sum(1), n, stable.sum(1), (stable**2).sum(1), ALPHA
    )
    return float(np.mean(upper < margin)), float(np.mean(lower > margin))


def test_error_test_rates_on_half_normal_errors() -> None:
    margin = 0.1 * HALF_NORMAL_MEAN  # a canary 10 % worse in MAE is too much
    n = mean_sample_size(HALF_NORMAL_SD, margin, alpha=ALPHA)
    assert n == 706
    slack = 3 * math.sqrt(0.8 * 0.2 / REG_REPS)
    equal_pass, equal_fail = _error_rates(0.0, margin, n)
    margin_pass, _ = _error_rates(margin, margin, n)
    _, worse_fail = _error_rates(2 * margin, margin, n)
    # Measured: power 0.79, false fail 0.0, false pass at the margin 0.046, fail at 2x 0.72.
    assert equal_pass >= 0.8 - slack and equal_fail == 0.0
    assert margin_pass <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / REG_REPS)
    assert worse_fail >= 0.65


def test_error_check_reads_regression_sketch_totals() -> None:
    rng = np.random.default_rng(6)
    canary, stable = np.abs(rng.normal(0, 1.0, 3000)), np.abs(rng.normal(0, 1.0, 3000))
    totals = [(x.size, float(x.sum()), float((x * x).sum())) for x in (canary, stable)]
    check = error_noninferiority(totals[0], totals[1], margin=0.08)
    assert check.outcome is Outcome.PASS
    assert check.value == pytest.approx(canary.mean() - stable.mean())
    assert check.details["upper"] < 0.08 and check.name == "mae_noninferiority"
    worse = np.abs(rng.normal(0, 1.5, 3000))
    bad = error_noninferiority(
        (3000, float(worse.sum()), float((worse**2).sum())), totals[1], margin=0.08
    )
    assert bad.outcome is Outcome.FAIL and bad.details["lower"] > 0.08


def test_errors_without_spread_decide_on_the_difference_alone() -> None:
    same = error_noninferiority((200, 100.0, 50.0), (200, 100.0, 50.0), margin=0.0)
    assert same.outcome is Outcome.INCONCLUSIVE and same.details["lower"] == 0.0
    assert (
        error_noninferiority((200, 100.0, 50.0), (200, 100.0, 50.0), margin=0.01).outcome
        is Outcome.PASS
    )
    assert (
        error_noninferiority((200, 120.0, 72.0), (200, 100.0, 50.0), margin=0.05).outcome
        is Outcome.FAIL
    )
