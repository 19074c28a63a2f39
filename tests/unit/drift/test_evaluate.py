"""The evaluate() API: inputs, overrides, guards, correction and the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drift.errors import SketchMismatch
from drift.evaluate import evaluate, profile_frame
from drift.profile import current_sketch
from drift.schema import FeatureKind
from drift.sketch import CategoricalSketch, NumericSketch
from drift.stats import Method

REPO = Path(__file__).resolve().parents[3]


def frames(
    n_ref: int = 3000, n_cur: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(n: int, drifted: bool) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "shifted": rng.normal(1.0 if drifted else 0.0, 1.0, n),
                "stable": rng.gamma(2.0, 2.0, n),
                "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
                "code": rng.integers(0, 4, n),
                "flag": rng.random(n) < 0.3,
            }
        )

    return frame(n_ref, False), frame(n_cur, True)


def test_default_report_on_frames() -> None:
    ref, cur = frames()
    report = evaluate(ref, cur)
    by_name = {f.name: f for f in report.features}
    assert [f.name for f in report.features] == list(ref.columns)
    assert by_name["shifted"].drifted and by_name["shifted"].method is Method.WASSERSTEIN
    assert by_name["stable"].drifted is False
    assert by_name["code"].kind is FeatureKind.CATEGORICAL  # int with few values
    assert by_name["flag"].method is Method.JENSEN_SHANNON
    assert by_name["shifted"].p_value is None and by_name["shifted"].threshold == 0.1
    assert (report.reference_rows, report.current_rows) == (3000, 2000)
    assert report.drifted_features == ("shifted",)
    assert report.drifted_share == pytest.approx(0.2)
    assert report.dataset_drift is False


def test_small_reference_uses_p_value_tests() -> None:
    ref, cur = frames(500, 400)
    report = evaluate(ref, cur)
    shifted = report.feature("shifted")
    assert shifted.method is Method.KS and shifted.p_value is not None and shifted.p_value < 1e-6
    assert report.feature("colour").method is Method.CHI_SQUARE
    assert report.feature("flag").method is Method.Z
    assert shifted.threshold == 0.05


def test_any_frame_like_object_works_without_pandas() -> None:
    class Frame(dict[str, object]):
        @property
        def columns(self) -> list[str]:
            return list(self)

    ref, cur = frames()
    plain = evaluate(
        Frame({c: ref[c].to_numpy() for c in ref}), Frame({c: cur[c].to_numpy() for c in cur})
    )
    assert [f.drifted for f in plain.features] == [f.drifted for f in evaluate(ref, cur).features]


def test_schema_overrides_inference() -> None:
    ref, cur = frames()
    report = evaluate(ref, cur, schema={"code": "numerical", "stable": FeatureKind.CATEGORICAL})
    assert report.feature("code").kind is FeatureKind.NUMERICAL
    assert report.feature("stable").kind is FeatureKind.CATEGORICAL
    with pytest.raises(ValueError, match="schema names columns"):
        evaluate(ref, cur, schema={"nope": "numerical"})
    with pytest.raises(ValueError):
        evaluate(ref, cur, schema={"code": "ordinal"})


def test_schema_with_a_profile_is_refused() -> None:
    ref, cur = frames()
    with pytest.raises(ValueError, match="schema applies to reference frames"):
        evaluate(profile_frame(ref), cur, schema={"code": "numerical"})


def test_datetime_columns_are_not_monitored() -> None:
    ref, cur = frames()
    ref["at"] = pd.Timestamp("2024-01-01")
    cur["at"] = pd.Timestamp("2024-02-01")
    assert "at" not in {f.name for f in evaluate(ref, cur).features}


@pytest.mark.parametrize(
    "method", ["psi", "kl_div", "jensenshannon", "hellinger", "ks", "chisquare"]
)
def test_method_override_on_a_numerical_feature(method: str) -> None:
    ref, cur = frames()
    shifted = evaluate(ref, cur, methods={"shifted": method}).feature("shifted")
    assert shifted.method == Method(method)
    assert shifted.drifted is True


@pytest.mark.parametrize("method", ["psi", "kl_div", "hellinger", "chisquare", "z"])
def test_method_override_on_a_categorical_feature(method: str) -> None:
    ref, cur = frames()
    colour = evaluate(ref, cur, methods={"colour": method}).feature("colour")
    assert colour.method == Method(method)
    assert colour.drifted is False


def test_threshold_override_changes_the_verdict() -> None:
    ref, cur = frames()
    stable = evaluate(ref, cur, thresholds={"stable": 0.0}).feature("stable")
    assert stable.threshold == 0.0 and stable.drifted is True


def test_invalid_overrides_fail_loudly() -> None:
    ref, cur = frames()
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        evaluate(ref, cur, methods={"stable": "magic"})
    with pytest.raises(ValueError, match="numerical features only"):
        evaluate(ref, cur, methods={"colour": "wasserstein"})
    with pytest.raises(ValueError, match="methods name features"):
        evaluate(ref, cur, methods={"absent": "ks"})
    with pytest.raises(ValueError, match="thresholds name features"):
        evaluate(ref, cur, thresholds={"absent": 0.1})
    with pytest.raises(ValueError, match="min_rows"):
        evaluate(ref, cur, min_rows=0)


def test_too_few_values_give_no_verdict() -> None:
    ref, cur = frames()
    cur.loc[10:, "stable"] = np.nan  # ten values left
    report = evaluate(ref, cur, min_rows=30)
    stable = report.feature("stable")
    assert stable.drifted is None and stable.insufficient_data
    assert stable.method is None and stable.score is None
    assert stable.current_count == 10
    assert stable.current_null_share == pytest.approx(1990 / 2000)
    # The share counts only features with a verdict.
    assert report.drifted_share == pytest.approx(1 / 4)


def test_a_distance_test_on_a_small_sample_reads_noise_as_drift_unless_floored() -> None:
    rng = np.random.default_rng(4)

    def calm(n: int) -> pd.DataFrame:
        return pd.DataFrame({f"x{i}": rng.normal(0.0, 1.0, n) for i in range(4)})

    ref = calm(20_000)  # more than 1000 rows: Wasserstein distance, as Evidently chooses
    small = calm(50)  # the same distribution
    unfloored = evaluate(ref, small)
    assert {f.method for f in unfloored.features} == {Method.WASSERSTEIN}
    assert unfloored.dataset_drift is True  # noise of 50 draws, read as drift
    floored = evaluate(ref, small, min_rows_distance=300)
    assert all(f.insufficient_data for f in floored.features)
    assert floored.dataset_drift is None
    # A p-value test judges the same sample: it accounts for the sample size.
    ks = evaluate(ref, small, min_rows_distance=300, methods={f"x{i}": "ks" for i in range(4)})
    assert [f.drifted for f in ks.features] == [False] * 4
    # Enough rows, the distance test judges (and finds no drift).
    assert evaluate(ref, calm(400), min_rows_distance=300).dataset_drift is False
    with pytest.raises(ValueError, match="min_rows_distance"):
        evaluate(ref, small, min_rows_distance=0)


def test_no_verdict_anywhere_means_no_dataset_verdict() -> None:
    ref, cur = frames(3000, 10)
    report = evaluate(ref, cur)
    assert all(f.drifted is None for f in report.features)
    assert report.drifted_share is None and report.dataset_drift is None


def test_benjamini_hochberg_adjusts_p_values() -> None:
    rng = np.random.default_rng(12)
    n = 400
    ref = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(20)})
    cur = pd.DataFrame({f"x{i}": rng.normal(0.18 if i < 3 else 0.0, 1.0, n) for i in range(20)})
    raw = evaluate(ref, cur)
    corrected = evaluate(ref, cur, bh_correction=True)
    for a, b in zip(raw.features, corrected.features, strict=True):
        assert a.p_value == b.p_value
        assert b.p_value_adjusted is not None and a.p_value is not None
        assert b.p_value_adjusted >= a.p_value
        assert b.drifted == (b.p_value_adjusted <= 0.05)
    assert sum(bool(f.drifted) for f in corrected.features) <= sum(
        bool(f.drifted) for f in raw.features
    )
    assert all(f.p_value_adjusted is None for f in raw.features)


def test_unseen_categories_and_null_shares_are_reported() -> None:
    ref, cur = frames()
    cur.loc[:99, "colour"] = "purple"
    cur.loc[100:199, "colour"] = None
    ref.loc[:29, "shifted"] = np.nan
    report = evaluate(ref, cur)
    assert report.feature("colour").unseen_categories == ("purple",)
    assert report.feature("colour").current_null_share == pytest.approx(0.05)
    assert report.feature("shifted").reference_null_share == pytest.approx(0.01)
    assert report.feature("stable").unseen_categories == ()


def test_profile_and_window_sketch_give_the_same_verdicts_as_frames() -> None:
    ref, cur = frames(8000, 6000)
    profile = profile_frame(ref)
    window = current_sketch(profile, {c: cur[c] for c in cur})
    from_sketch = evaluate(profile, window)
    from_frames = evaluate(ref, cur)
    assert [f.drifted for f in from_sketch.features] == [f.drifted for f in from_frames.features]
    for a, b in zip(from_sketch.features, from_frames.features, strict=True):
        assert a.method == b.method
        assert a.score == pytest.approx(b.score, abs=0.01)
    assert from_sketch.current_rows == 6000
    # A profile against a frame, and a frame against a sketch, work too.
    assert evaluate(profile, cur).drifted_features == from_frames.drifted_features
    assert evaluate(ref, window).drifted_features == from_frames.drifted_features


def test_distances_from_sketches_are_close_to_exact_ones() -> None:
    ref, cur = frames(3000, 3000)
    small = profile_frame(ref)  # 3000 values sit whole in the sample: exact
    tiny = profile_frame(ref, sample_size=500)  # histograms only
    for method in ("psi", "kl_div", "jensenshannon", "hellinger"):
        exact = evaluate(small, cur, methods={"stable": method}).feature("stable").score
        binned = evaluate(tiny, cur, methods={"stable": method}).feature("stable").score
        assert binned == pytest.approx(exact, abs=0.02), method


def test_mismatched_window_sketches_are_refused() -> None:
    ref, cur = frames()
    profile = profile_frame(ref)
    window = current_sketch(profile, {c: cur[c] for c in cur})
    window.features["shifted"] = NumericSketch((0.0, 1.0))
    with pytest.raises(SketchMismatch, match="edges"):
        evaluate(profile, window)
    window.features["shifted"] = CategoricalSketch()
    with pytest.raises(SketchMismatch):
        evaluate(profile, window)
    del window.features["shifted"]
    with pytest.raises(SketchMismatch, match="no feature"):
        evaluate(profile, window)


def test_current_frame_must_hold_every_feature() -> None:
    ref, cur = frames()
    with pytest.raises(ValueError, match="lacks features"):
        evaluate(ref, cur.drop(columns=["colour"]))


def test_drift_share_sets_the_dataset_verdict() -> None:
    ref, cur = frames()
    assert evaluate(ref, cur, drift_share=0.2).dataset_drift is True
    assert evaluate(ref, cur, drift_share=0.21).dataset_drift is False


def test_report_lookup() -> None:
    ref, cur = frames()
    report = evaluate(ref, cur)
    with pytest.raises(KeyError):
        report.feature("absent")


def test_importing_drift_does_not_import_pandas() -> None:
    code = (
        "import sys, drift.evaluate, drift.profile, drift.stats.numerical, drift.stats.categorical;"
        "sys.exit('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False)
    assert done.returncode == 0
