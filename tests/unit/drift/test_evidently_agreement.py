"""driftwatch's verdicts against Evidently 0.7's DataDriftPreset on the same frames.

Seeded scenarios (no drift, mean shift, variance change, new categories,
category frequency change, nulls), each with small windows (at most 1000 rows:
p-value tests) and large ones (distances), plus small references against larger
windows. Acceptance: at least 95% of per-feature decisions identical overall
and the same dataset-drift flag in every scenario. Evidently runs once per
scenario (module fixture); the frames are kept small so the file stays fast.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from drift.evaluate import evaluate, profile_frame
from drift.profile import current_sketch
from drift.report import DriftReport
from drift.stats import Method
from tests.harness.evidently import EvidentlyResult, run_evidently

with warnings.catch_warnings():
    # Evidently's own imports warn about numpy and litestar deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    from evidently.legacy.calculations.stattests import (
        chi_stat_test,
        hellinger_stat_test,
        jensenshannon_stat_test,
        kl_div_stat_test,
        ks_stat_test,
        psi_stat_test,
        wasserstein_stat_test,
        z_stat_test,
    )
    from evidently.legacy.core import ColumnType

# Evidently's display names of its default tests, as they appear in the snapshot.
EVIDENTLY_NAMES = {
    Method.KS: "K-S p_value",
    Method.WASSERSTEIN: "Wasserstein distance (normed)",
    Method.JENSEN_SHANNON: "Jensen-Shannon distance",
    Method.CHI_SQUARE: "chi-square p_value",
    Method.Z: "Z-test p_value",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    reference_rows: int
    current_rows: int
    change: dict[str, tuple[str, ...]]
    seed: int

    @property
    def label(self) -> str:
        return f"{self.name}-{self.reference_rows}x{self.current_rows}"


CHANGES: dict[str, dict[str, tuple[str, ...]]] = {
    "no_drift": {},
    "mean_shift": {"shift": ("n_normal", "n_lognormal", "n_uniform", "n_bimodal", "n_int_wide")},
    "variance_change": {"scale": ("n_normal", "n_uniform", "n_bimodal")},
    "new_categories": {"new": ("c_colour", "c_size", "c_code")},
    "frequency_change": {
        "freq": ("c_colour", "c_size", "c_binary", "c_bool", "c_code", "n_flag", "n_few")
    },
    "nulls": {"nulls": ("n_normal", "n_lognormal", "c_colour", "c_size")},
}
# Large references exceed the profile's 5,000-value sample, so numerical tests run on
# histograms; small ones sit whole in it and run on exact values.
SIZES = {"small": (600, 600), "large": (6000, 6000)}
SCENARIOS = [
    Scenario(name, ref_rows, cur_rows, change, seed=100 * i + j)
    for i, (name, change) in enumerate(CHANGES.items())
    for j, (ref_rows, cur_rows) in enumerate(SIZES.values())
] + [
    # A small reference against a larger window: p-value tests on unequal sizes.
    Scenario("mean_shift", 800, 3000, CHANGES["mean_shift"], seed=901),
    Scenario("frequency_change", 800, 3000, CHANGES["frequency_change"], seed=902),
]


def make_frame(
    rng: np.random.Generator, n: int, change: dict[str, tuple[str, ...]]
) -> pd.DataFrame:
    """Twelve features: 7 numerical (2 with few values), 5 categorical (one int, one bool)."""
    shift, scale = change.get("shift", ()), change.get("scale", ())
    new, freq = change.get("new", ()), change.get("freq", ())

    def numeric(name: str, x: np.ndarray) -> np.ndarray:
        if name in shift:
            x = x + 0.6 * x.std()
        if name in scale:
            x = x.mean() + (x - x.mean()) * 1.7
        return x

    def categories(name: str, values: list[Any], p: list[float]) -> np.ndarray:
        weights = np.array(p[::-1] if name in freq else p)
        if name in new:
            values, weights = [*values, "new_a", "new_b"], np.append(weights * 0.7, [0.15, 0.15])
        return rng.choice(np.array(values, dtype=object), n, p=weights / weights.sum())

    bimodal = np.where(rng.random(n) < 0.4, rng.normal(-3, 1, n), rng.normal(4, 1.5, n))
    code_p = np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    codes = rng.choice(6, n, p=code_p[::-1] if "c_code" in freq else code_p)
    if "c_code" in new:
        codes = np.where(rng.random(n) < 0.25, rng.choice([7, 8], n), codes)
    frame = pd.DataFrame(
        {
            "n_normal": numeric("n_normal", rng.normal(10, 2, n)),
            "n_lognormal": numeric("n_lognormal", rng.lognormal(0, 0.7, n)),
            "n_uniform": numeric("n_uniform", rng.uniform(-5, 5, n)),
            "n_bimodal": numeric("n_bimodal", bimodal),
            "n_int_wide": rng.integers(0, 500, n) + (150 if "n_int_wide" in shift else 0),
            "n_flag": (rng.random(n) < (0.55 if "n_flag" in freq else 0.3)).astype(float),
            "n_few": rng.choice(
                [0.5, 1.5, 2.5, 3.5],
                n,
                p=[0.1, 0.2, 0.3, 0.4] if "n_few" in freq else [0.4, 0.3, 0.2, 0.1],
            ),
            "c_colour": categories(
                "c_colour", ["red", "green", "blue", "black"], [0.4, 0.3, 0.2, 0.1]
            ),
            "c_size": categories("c_size", ["S", "M", "L"], [0.5, 0.3, 0.2]),
            "c_binary": categories("c_binary", ["yes", "no"], [0.7, 0.3]),
            "c_code": codes.astype(np.int64),
            "c_bool": rng.random(n) < (0.7 if "c_bool" in freq else 0.4),
        }
    )
    for name in change.get("nulls", ()):
        missing = rng.random(n) < 0.15
        if frame[name].dtype == object:
            frame.loc[missing, name] = None
        else:
            frame.loc[missing, name] = np.nan
    return frame


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    ours: DriftReport
    from_sketch: DriftReport  # the same comparison from a profile and a window sketch
    theirs: EvidentlyResult


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    out = []
    for scenario in SCENARIOS:
        rng = np.random.default_rng(scenario.seed)
        nulls = {"nulls": scenario.change["nulls"]} if "nulls" in scenario.change else {}
        reference = make_frame(rng, scenario.reference_rows, nulls)
        current = make_frame(rng, scenario.current_rows, scenario.change)
        profile = profile_frame(reference)
        from_sketch = evaluate(profile, current_sketch(profile, {c: current[c] for c in current}))
        theirs = run_evidently(reference, current)
        out.append(Outcome(scenario, evaluate(reference, current), from_sketch, theirs))
    return out


def _report(o: Outcome, path: str) -> DriftReport:
    return o.ours if path == "frames" else o.from_sketch


@pytest.mark.parametrize("path", ["frames", "sketch"])
def test_dataset_drift_flag_is_identical_in_every_scenario(
    outcomes: list[Outcome], path: str
) -> None:
    differing = [
        (o.scenario.label, _report(o, path).dataset_drift, o.theirs.dataset_drift)
        for o in outcomes
        if _report(o, path).dataset_drift != o.theirs.dataset_drift
    ]
    assert not differing


@pytest.mark.parametrize("path", ["frames", "sketch"])
def test_at_least_95_percent_of_feature_decisions_are_identical(
    outcomes: list[Outcome], path: str
) -> None:
    total = same = 0
    differing = []
    for o in outcomes:
        report = _report(o, path)
        assert {f.name for f in report.features} == set(o.theirs.drifted), o.scenario.label
        for f in report.features:
            total += 1
            if f.drifted == o.theirs.drifted[f.name]:
                same += 1
            else:
                differing.append((o.scenario.label, f.name, f.method, f.score, f.p_value))
    assert same / total >= 0.95, differing


def test_default_methods_are_evidentlys(outcomes: list[Outcome]) -> None:
    for o in outcomes:
        for f in o.ours.features:
            assert f.method is not None
            assert EVIDENTLY_NAMES[f.method] == o.theirs.method[f.name], (o.scenario.label, f.name)


def test_scores_match_evidentlys(outcomes: list[Outcome]) -> None:
    """P-values and categorical distances are exact; Wasserstein comes from histograms."""
    for o in outcomes:
        for f in o.ours.features:
            theirs = o.theirs.score[f.name]
            ours = f.p_value if f.p_value is not None else f.score
            assert ours is not None
            tolerance = 0.01 if f.method is Method.WASSERSTEIN else 1e-6
            assert ours == pytest.approx(theirs, abs=tolerance), (o.scenario.label, f.name)


def test_scenarios_exercise_both_verdicts_and_every_default_method(outcomes: list[Outcome]) -> None:
    flags = {o.theirs.dataset_drift for o in outcomes}
    methods = {f.method for o in outcomes for f in o.ours.features}
    assert flags == {True, False}
    assert methods == set(EVIDENTLY_NAMES)
    for o in outcomes:
        for kind in ("shift", "scale", "new", "freq"):
            for name in o.scenario.change.get(kind, ()):
                assert o.ours.feature(name).drifted, (o.scenario.label, name)


# -- each statistic against Evidently's own stattest on the same columns ------------


def _columns(seed: int, n_ref: int, n_cur: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return make_frame(rng, n_ref, {}), make_frame(rng, n_cur, CHANGES["mean_shift"])


@pytest.mark.parametrize(
    ("method", "stattest", "column", "kind"),
    [
        ("ks", ks_stat_test, "n_normal", ColumnType.Numerical),
        ("wasserstein", wasserstein_stat_test, "n_bimodal", ColumnType.Numerical),
        ("psi", psi_stat_test, "n_lognormal", ColumnType.Numerical),
        ("kl_div", kl_div_stat_test, "n_uniform", ColumnType.Numerical),
        ("jensenshannon", jensenshannon_stat_test, "n_normal", ColumnType.Numerical),
        ("hellinger", hellinger_stat_test, "n_int_wide", ColumnType.Numerical),
        ("psi", psi_stat_test, "n_few", ColumnType.Numerical),
        ("jensenshannon", jensenshannon_stat_test, "n_few", ColumnType.Numerical),
        ("chisquare", chi_stat_test, "c_colour", ColumnType.Categorical),
        ("z", z_stat_test, "c_binary", ColumnType.Categorical),
        ("jensenshannon", jensenshannon_stat_test, "c_size", ColumnType.Categorical),
        ("psi", psi_stat_test, "c_colour", ColumnType.Categorical),
        ("kl_div", kl_div_stat_test, "c_size", ColumnType.Categorical),
        ("hellinger", hellinger_stat_test, "c_colour", ColumnType.Categorical),
    ],
)
def test_statistic_equals_evidentlys_stattest(
    method: str, stattest: Any, column: str, kind: ColumnType
) -> None:
    # Small enough that the reference sits whole in its sample: exact paths on both sides.
    reference, current = _columns(7, 900, 700)
    report = evaluate(reference, current, methods={column: method})
    ours = report.feature(column)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = stattest(reference[column].copy(), current[column].copy(), kind, None)
    value = ours.p_value if ours.p_value is not None else ours.score
    assert value is not None and math.isfinite(value)
    assert value == pytest.approx(theirs.drift_score, rel=1e-9, abs=1e-12)
    assert ours.drifted == theirs.drifted
