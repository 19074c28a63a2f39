"""The real-model scenario: its figures are pinned, its events carry the champion's scores."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from consumers.synthetic import SyntheticPlan
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from service.config import load_config
from service.dev.concept import (
    CATEGORICAL,
    NUMERICAL,
    PINNED,
    ConceptStream,
    champion_artifact,
    check_model,
    figures,
    scores,
    train_champion,
    write_reference_csv,
)
from service.errors import ConfigError

DEMO = Path(__file__).parents[3] / "service" / "examples" / "demo.yaml"


def _fraud() -> ModelSpec:
    return load_config(DEMO).model_specs()["fraud"]


def test_seed_7_figures_are_pinned() -> None:
    got = figures(7)
    assert got.champion_pre == pytest.approx(PINNED.champion_pre, abs=0.002)
    assert got.champion_post == pytest.approx(PINNED.champion_post, abs=0.002)
    assert got.retrained_post == pytest.approx(PINNED.retrained_post, abs=0.002)
    # The champion is linear: its refit is the linear refit.
    assert got.linear_post == got.retrained_post


@pytest.mark.parametrize("seed", [7, 11, 23])
def test_the_champion_drops_10_points_and_a_retrained_model_recovers(seed: int) -> None:
    got = figures(seed)
    assert got.champion_pre - got.champion_post >= 0.10
    assert got.retrained_post >= 0.98 * got.champion_pre


def test_every_prediction_is_the_champions_score_of_the_event(tmp_path: Path) -> None:
    champion = train_champion(7, rows=3_000)
    plan = SyntheticPlan(_fraud(), rate=10.0, start=1_000.0, drift_at=300.0, seed=7)
    stream = ConceptStream(plan, champion)
    events = [stream.event(i, 1_000.0 + i / 10.0) for i in range(6_000)]
    decoded = [msgspec.json.decode(e.prediction) for e in events]
    features = pd.DataFrame([d["features"] for d in decoded])
    features[list(NUMERICAL)] = features[list(NUMERICAL)].astype(float)
    expected = np.round(scores(champion, features), 5)
    assert np.array_equal(np.array([d["prediction"] for d in decoded]), expected)
    assert features["distance_km"].isna().any()
    assert features["channel"].isna().any()
    labels = np.array([msgspec.json.decode(e.label)["label"] for e in events])
    assert set(labels) == {0, 1}
    correct = (expected >= 0.5) == (labels == 1)
    before, after = correct[:3_000].mean(), correct[3_000:].mean()
    assert before - after >= 0.10
    # The event's index fixes its draws: another stream agrees event by event.
    again = ConceptStream(plan, champion)
    assert again.event(4_500, 1_450.0) == events[4_500]
    assert set(features.columns) == {*NUMERICAL, *CATEGORICAL}


def test_the_champion_artifact_is_trained_once_then_loaded(tmp_path: Path) -> None:
    path = tmp_path / "fraud" / "champion.skops"
    trained, sha256 = champion_artifact(path, seed=7)
    loaded, again = champion_artifact(path, seed=99)
    assert again == sha256
    rows = pd.DataFrame(
        {"amount": [50.0], "age_days": [400.0], "txn_per_hour": [3.0], "distance_km": [None]}
        | {"country": ["US"], "channel": [None]}
    )
    assert scores(loaded, rows).tolist() == scores(trained, rows).tolist()


def test_a_model_without_the_scenarios_features_is_named() -> None:
    assert check_model(_fraud()) == []
    other = ModelSpec(
        "churn",
        (
            FeatureSpec("amount", FeatureKind.CATEGORICAL),
            FeatureSpec("tenure", FeatureKind.NUMERICAL),
        ),
        PredictionSpec(PredictionKind.NUMERICAL),
        window_seconds=60,
    )
    problems = check_model(other)
    assert "feature 'amount' must be numerical" in problems
    assert "feature 'tenure' is not part of the scenario" in problems
    from service.dev.concept import concept_streams

    with pytest.raises(ConfigError, match=r"models\.churn: feature .age_days. must be numerical"):
        concept_streams([SyntheticPlan(other)], None)


def test_the_reference_file_holds_pre_drift_rows_with_the_champions_predictions(
    tmp_path: Path,
) -> None:
    champion = train_champion(7, rows=2_000)
    write_reference_csv(tmp_path / "ref.csv", champion, seed=7, rows=3_000)
    ref = pd.read_csv(tmp_path / "ref.csv")
    assert list(ref.columns) == [*NUMERICAL, *CATEGORICAL, "prediction"]
    assert len(ref) == 3_000
    assert ref["amount"].mean() == pytest.approx(50.0, abs=1.5)  # the pre-drift mean
    assert ref["distance_km"].isna().sum() > 0
    assert np.allclose(ref["prediction"], np.round(scores(champion, ref), 5))


def test_the_consumer_takes_every_event_of_the_scenario() -> None:
    from consumers.events import EventDecoder

    spec = _fraud()
    stream = ConceptStream(SyntheticPlan(spec, drift_at=50.0, seed=7), train_champion(7, 2_000))
    events = [stream.event(i, float(i)) for i in range(100)]
    decoder = EventDecoder({"fraud": spec})
    batch = decoder.decode_batch([e.prediction for e in events])
    assert (len(batch.events), batch.invalid) == (100, [])
    assert {decoder.decode_label(e.label).label for e in events} == {0, 1}


def test_produce_demo_names_what_keeps_a_model_from_the_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import main

    text = DEMO.read_text(encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(text.replace("country: {type: categorical}", "country: {type: numerical}"))
    argv = ["produce-demo", "--config", str(config), "--scenario", "concept", "--count", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "--scenario concept needs the features of the demo's fraud model:",
        "models.fraud: feature 'country' must be categorical",
    ]


def test_produce_demo_says_the_scenario_needs_a_checkout_when_service_dev_is_absent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.cli import main

    # As in an installed wheel, which leaves service/dev/ out.
    monkeypatch.setitem(sys.modules, "service.dev.concept", None)
    config = tmp_path / "c.yaml"
    config.write_text(DEMO.read_text(encoding="utf-8"))
    argv = ["produce-demo", "--config", str(config), "--scenario", "concept", "--count", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--scenario concept" in err and "checkout" in err


def test_a_categorical_models_reference_holds_the_predicted_class(tmp_path: Path) -> None:
    champion = train_champion(7, rows=2_000)
    write_reference_csv(
        tmp_path / "ref.csv", champion, seed=7, rows=500, kind=PredictionKind.CATEGORICAL
    )
    ref = pd.read_csv(tmp_path / "ref.csv", dtype={"prediction": str})
    expected = np.where(scores(champion, ref) >= 0.5, "1", "0")
    assert list(ref["prediction"]) == list(expected)


def test_produce_demo_writes_one_models_reference_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from service.cli import main

    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    raw["models"]["fraud2"] = raw["models"]["fraud"]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    reference = tmp_path / "ref.csv"
    argv = ["produce-demo", "--config", str(config), "--count", "1", "--reference", str(reference)]
    assert main(argv) == 1
    assert "--reference writes one model's file: give one --model" in capsys.readouterr().err
    assert not reference.exists()
