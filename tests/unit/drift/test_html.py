"""Evidently HTML reports: the reference rebuilt from samples, per-column tests, storage.

Evidently runs twice in this file (one snapshot, one page), on a few hundred rows.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest

from drift.html import (
    compress_html,
    decompress_html,
    drift_snapshot,
    reference_frame,
    render_drift_html,
    stored_tests,
)
from drift.profile import CategoricalProfile, NumericalProfile, ReferenceProfile
from drift.report import DriftReport, FeatureDrift
from drift.schema import FeatureKind
from drift.stats import Method

KINDS = {"income": "numerical", "colour": "categorical", "rooms": "numerical"}
ROWS = 600
SAMPLE = 400


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(7)
    income = rng.normal(50.0, 10.0, ROWS)
    income[rng.choice(ROWS, 60, replace=False)] = np.nan
    colour = rng.choice(["red", "green", "blue"], ROWS).astype(object)
    colour[rng.choice(ROWS, 120, replace=False)] = None
    rooms = rng.integers(1, 5, ROWS).astype(float)
    columns = {"income": income, "colour": colour, "rooms": rooms}
    return ReferenceProfile.from_columns(columns, KINDS, sample_size=SAMPLE, seed=3)


@pytest.fixture(scope="module")
def current() -> pd.DataFrame:
    rng = np.random.default_rng(8)
    n = 300
    return pd.DataFrame(
        {
            "income": rng.normal(58.0, 10.0, n),
            "colour": rng.choice(["red", "green", "purple"], n, p=[0.6, 0.3, 0.1]),
            "rooms": rng.integers(1, 5, n),  # integers: read as floats, as driftwatch does
        }
    )


@pytest.fixture(scope="module")
def snapshot(profile: ReferenceProfile, current: pd.DataFrame) -> dict[str, Any]:
    result: dict[str, Any] = drift_snapshot(
        reference_frame(profile),
        current,
        kinds=KINDS,
        methods={"income": "psi", "rooms": "chisquare"},
        thresholds={"income": 0.2, "colour": 0.01},
        drift_share=0.3,
    ).dict()
    return result


def value_drift(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        m["config"]["column"]: m
        for m in snapshot["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }


# --- reference_frame -------------------------------------------------------------------


def test_reference_frame_has_every_feature_and_the_longest_sample(
    profile: ReferenceProfile,
) -> None:
    frame = reference_frame(profile)
    assert list(frame.columns) == list(KINDS)
    assert len(frame) == SAMPLE  # the longest sample: income's and rooms' non-null values
    assert frame["income"].dtype == np.float64
    assert frame["colour"].dtype == object


def test_reference_frame_keeps_the_null_share(profile: ReferenceProfile) -> None:
    frame = reference_frame(profile)
    for name, feature in profile.features.items():
        share = feature.nulls / (feature.nulls + feature.count)
        assert frame[name].isna().mean() == pytest.approx(share, abs=1 / len(frame))
    assert frame["income"].isna().sum() == round(SAMPLE * 0.1)
    assert frame["rooms"].isna().sum() == 0


def test_reference_frame_values_come_from_the_sample(profile: ReferenceProfile) -> None:
    frame = reference_frame(profile)
    income = profile.features["income"]
    colour = profile.features["colour"]
    assert isinstance(income, NumericalProfile) and isinstance(colour, CategoricalProfile)
    drawn = frame["income"].dropna().to_numpy()
    assert np.isin(drawn, income.sample).all()
    assert len(np.unique(drawn)) == len(drawn)  # a subset of the sample, nothing repeated
    assert set(frame["colour"].dropna()) <= set(colour.sample)
    assert all(v is None for v in frame["colour"] if not isinstance(v, str))


def test_reference_frame_is_shuffled_and_seeded(profile: ReferenceProfile) -> None:
    frame = reference_frame(profile, seed=1)
    pd.testing.assert_frame_equal(frame, reference_frame(profile, seed=1))
    assert not frame["income"].equals(reference_frame(profile, seed=2)["income"])
    values = frame["income"].dropna().to_numpy()
    assert not (np.diff(values) >= 0).all()  # the profile's sample is sorted; the frame is not


def test_reference_frame_draws_again_when_asked_for_more_rows(
    profile: ReferenceProfile,
) -> None:
    frame = reference_frame(profile, rows=1000)
    income = profile.features["income"]
    assert isinstance(income, NumericalProfile)
    assert len(frame) == 1000
    drawn = frame["income"].dropna().to_numpy()
    assert len(drawn) == 900
    assert np.isin(drawn, income.sample).all()
    assert np.isin(income.sample, drawn).all()  # every sample value, then draws with replacement


def test_reference_frame_is_the_reference_when_the_profile_holds_it_all() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=50)
    x[[3, 17]] = np.nan
    c = ["a", None, "b", "a", "c"] * 10
    profile = ReferenceProfile.from_columns(
        {"x": x, "c": c}, {"x": "numerical", "c": "categorical"}
    )
    frame = reference_frame(profile)
    assert len(frame) == 50
    np.testing.assert_array_equal(np.sort(frame["x"].dropna()), np.sort(x[~np.isnan(x)]))
    assert frame["x"].isna().sum() == 2
    assert Counter(frame["c"]) == Counter(c)


def test_reference_frame_refuses_no_rows(profile: ReferenceProfile) -> None:
    with pytest.raises(ValueError, match="rows"):
        reference_frame(profile, rows=0)


# --- Evidently -------------------------------------------------------------------------


def test_snapshot_uses_the_given_methods_and_thresholds(snapshot: dict[str, Any]) -> None:
    drift = value_drift(snapshot)
    assert set(drift) == set(KINDS)
    assert drift["income"]["config"]["method"] == "psi"
    assert drift["income"]["config"]["threshold"] == 0.2
    assert drift["colour"]["config"]["method"] == "chi-square p_value"  # Evidently's default
    assert drift["colour"]["config"]["threshold"] == 0.01
    # Chi-square on a numerical feature is Evidently's default choice, not a name it takes.
    assert drift["rooms"]["config"]["method"] == "chi-square p_value"


def test_snapshot_sees_the_shift(snapshot: dict[str, Any]) -> None:
    verdicts = {
        t["metric_config"]["params"]["column"]: t["status"]
        for t in snapshot["tests"]
        if t["metric_config"]["params"]["type"].endswith("ValueDrift")
    }
    assert verdicts["income"] == "FAIL"  # a shift of 0.8 standard deviations
    assert verdicts["colour"] == "FAIL"  # a new category, one gone
    count = next(m for m in snapshot["metrics"] if m["config"]["type"].endswith("ColumnsCount"))
    assert count["config"]["drift_share"] == 0.3


def test_render_is_a_page_for_people(profile: ReferenceProfile, current: pd.DataFrame) -> None:
    page = render_drift_html(
        reference_frame(profile),
        current,
        kinds=KINDS,
        methods={"income": "psi"},
        title="driftwatch <churn>",
    )
    assert page.lstrip().startswith("<!DOCTYPE html>")
    assert "<title>driftwatch &lt;churn&gt;</title>" in page
    assert "window.drawDashboard" in page  # Evidently's own script draws it
    for name in KINDS:
        assert f'"column_name": "{name}"' in page
    assert '"stattest_name": "PSI"' in page


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"methods": {"colour": "ks"}}, "numerical features only"),
        ({"methods": {"income": "t_test"}}, "unknown method"),
        ({"methods": {"age": "psi"}}, "not in kinds"),
        ({"thresholds": {"age": 0.1}}, "not in kinds"),
        ({"kinds": {"age": "numerical"}}, "lacks features"),
        ({"kinds": {"income": "ordinal"}}, "ordinal"),
        ({"drift_share": 0.0}, "drift_share"),
    ],
)
def test_bad_arguments_fail_before_evidently_runs(
    profile: ReferenceProfile, current: pd.DataFrame, options: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"kinds": KINDS, **options}
    with pytest.raises(ValueError, match=message):
        drift_snapshot(reference_frame(profile), current, **arguments)


def test_stored_tests_follow_the_report() -> None:
    def feature(name: str, method: Method | None, threshold: float | None) -> FeatureDrift:
        drifted = None if method is None else False
        return FeatureDrift(
            name, FeatureKind.NUMERICAL, method, 0.0, None, threshold, drifted, 100, 100, 0.0, 0.0
        )

    report = DriftReport(
        (feature("a", Method.PSI, 0.25), feature("b", Method.KS, 0.05), feature("c", None, None)),
        reference_rows=100,
        current_rows=100,
    )
    assert stored_tests(report) == ({"a": "psi", "b": "ks"}, {"a": 0.25, "b": 0.05})


# --- storage ---------------------------------------------------------------------------


def test_compress_round_trip() -> None:
    page = "<html><body>Drift détectée: 3 of 4 features ✓</body></html>" * 200
    data = compress_html(page)
    assert isinstance(data, bytes)
    assert len(data) < len(page.encode()) / 10
    assert decompress_html(data) == page
    assert compress_html(page) == data  # no timestamp in the gzip header
