"""Train mode refits the champion: a user's own pipeline, its columns, its classes' dtype."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from retrain.artifacts import TRUSTED_TYPES, artifact_types, load_model, save_model, sha256_hex
from retrain.trainer.__main__ import main
from tests.unit.retrain.export import write_export

NUMERICAL = ("a", "b")
CATEGORICAL = ("kind",)


def interaction(rows: int, seed: int) -> pd.DataFrame:
    """Label 1 when sign(a) * sign(b) > 0, flipped for kind "z": no line separates it."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame["kind"] = rng.choice(["x", "y", "z"], rows).astype(object)
    same = np.sign(frame["a"]) * np.sign(frame["b"]) > 0
    frame["label"] = (same ^ (frame["kind"] == "z")).astype(int)
    return frame


def user_pipeline(final: Any) -> Pipeline:
    encode = ColumnTransformer(
        [("kind", OneHotEncoder(handle_unknown="ignore"), ["kind"])], remainder="passthrough"
    )
    return Pipeline([("prepare", encode), ("model", final)])


def env_for(tmp_path: Path, data: Path, **extra: str) -> dict[str, str]:
    return {
        "DRIFTWATCH_MODE": "train",
        "DRIFTWATCH_TASK": "classification",
        "DRIFTWATCH_DATA_URI": str(data),
        "DRIFTWATCH_OUTPUT_URI": str(tmp_path / "out"),
        "DRIFTWATCH_RESULT_PATH": str(tmp_path / "result.json"),
        **extra,
    }


def champion_env(uri: str, sha256: str, trusted: Iterable[str] = ()) -> dict[str, str]:
    env = {"DRIFTWATCH_CHAMPION_URI": uri, "DRIFTWATCH_CHAMPION_SHA256": sha256}
    if trusted:
        env["DRIFTWATCH_TRUSTED_TYPES"] = ",".join(sorted(trusted))
    return env


def result_of(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "result.json").read_text())
    return data


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "interaction.parquet"
    return write_export(path, interaction(3_000, seed=1), NUMERICAL, CATEGORICAL)


@pytest.mark.parametrize(
    "final",
    [
        RandomForestClassifier(n_estimators=30, max_depth=8, min_samples_leaf=3, random_state=5),
        HistGradientBoostingClassifier(learning_rate=0.2, max_iter=60, random_state=5),
    ],
    ids=["forest", "boosting"],
)
def test_a_users_champion_is_refitted_with_its_type_params_and_int_classes(
    tmp_path: Path, export: Path, final: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = interaction(1_000, seed=2)  # the champion saw other rows, as before a drift
    champion = user_pipeline(final).fit(frame[["a", "b", "kind"]], frame["label"])
    assert champion.classes_.dtype.kind == "i"
    uri, sha256 = save_model(champion, str(tmp_path / "champion.skops"))
    extra = artifact_types(Path(uri).read_bytes()) - TRUSTED_TYPES
    assert main(env_for(tmp_path, export, **champion_env(uri, sha256, extra))) == 0
    result = result_of(tmp_path)
    fitted = result["fitted"]
    kind = type(final)
    assert fitted["estimator"] == f"{kind.__module__}.{kind.__qualname__}"
    assert fitted["source"] == "champion"
    assert "why" not in fitted
    assert fitted["rows"] == 2_400
    for name, value in final.get_params(deep=False).items():
        if isinstance(value, int | float | str):
            assert fitted["params"][name] == value, name
    assert capsys.readouterr().out.startswith(
        f"driftwatch-trainer: fitted {fitted['estimator']} (champion) on 2400 rows in "
    )
    candidate = load_model(result["model_uri"], result["sha256"], extra)
    assert type(candidate.steps[-1][1]) is kind
    assert candidate.get_params()["model"].get_params() == final.get_params()
    assert candidate.classes_.tolist() == [0, 1]
    assert candidate.classes_.dtype.kind == "i"
    assert result["metrics"]["accuracy"] > 0.9


def test_a_champion_needing_types_fails_until_they_are_named(
    tmp_path: Path, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = interaction(500, seed=2)
    forest = RandomForestClassifier(n_estimators=5, random_state=0)
    champion = user_pipeline(forest).fit(frame[["a", "b", "kind"]], frame["label"])
    uri, sha256 = save_model(champion, str(tmp_path / "champion.skops"))
    extra = artifact_types(Path(uri).read_bytes()) - TRUSTED_TYPES
    assert "sklearn.ensemble._forest.RandomForestClassifier" in extra
    assert main(env_for(tmp_path, export, **champion_env(uri, sha256))) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"driftwatch-trainer: {uri} holds types that are not trusted: ")
    assert all(name in err for name in extra)
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "result.json").exists()
    assert main(env_for(tmp_path, export, **champion_env(uri, sha256, extra))) == 0
    assert result_of(tmp_path)["fitted"]["source"] == "champion"


def test_the_champion_trains_on_its_own_columns_only(tmp_path: Path) -> None:
    frame = interaction(2_000, seed=3)
    frame["noise"] = np.random.default_rng(0).normal(size=len(frame))
    frame["region"] = "eu"
    data = write_export(tmp_path / "wide.parquet", frame, ("noise", "a", "b"), ("region", "kind"))
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    champion = user_pipeline(forest).fit(frame[["kind", "b", "a"]], frame["label"])
    uri, sha256 = save_model(champion, str(tmp_path / "champion.skops"))
    extra = artifact_types(Path(uri).read_bytes()) - TRUSTED_TYPES
    trusted = champion_env(uri, sha256, extra)
    assert main(env_for(tmp_path, data, **trusted)) == 0
    result = result_of(tmp_path)
    candidate = load_model(result["model_uri"], result["sha256"], extra)
    assert candidate.feature_names_in_.tolist() == ["kind", "b", "a"]
    validate = {
        **env_for(tmp_path, data, **trusted),
        "DRIFTWATCH_MODE": "validate",
        "DRIFTWATCH_CANDIDATE_URI": result["model_uri"],
        "DRIFTWATCH_CANDIDATE_SHA256": result["sha256"],
    }
    assert main(validate) == 0
    assert result_of(tmp_path)["candidate"]["metrics"] == result["metrics"]


def test_a_champion_naming_a_column_the_export_lacks_fails_naming_it(
    tmp_path: Path, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = interaction(500, seed=2).rename(columns={"b": "balance"})
    forest = RandomForestClassifier(n_estimators=5, random_state=0)
    champion = user_pipeline(forest).fit(frame[["a", "balance", "kind"]], frame["label"])
    uri, sha256 = save_model(champion, str(tmp_path / "champion.skops"))
    extra = artifact_types(Path(uri).read_bytes()) - TRUSTED_TYPES
    assert main(env_for(tmp_path, export, **champion_env(uri, sha256, extra))) == 1
    assert capsys.readouterr().err == (
        "driftwatch-trainer: the champion needs the column(s) balance, "
        "which the export lacks (it has a, b, kind)\n"
    )


def test_a_champion_of_the_other_task_is_refused(
    tmp_path: Path, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = interaction(500, seed=2)
    champion = LinearRegression().fit(frame[["a", "b"]], frame["label"])
    uri, sha256 = save_model(champion, str(tmp_path / "champion.skops"))
    trusted = {"sklearn.linear_model._base.LinearRegression"}
    assert main(env_for(tmp_path, export, **champion_env(uri, sha256, trusted))) == 1
    assert capsys.readouterr().err == (
        "driftwatch-trainer: the champion (sklearn.linear_model._base.LinearRegression) "
        "is a regressor, but DRIFTWATCH_TASK is classification\n"
    )


def test_a_fit_error_carries_the_estimators_message_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = interaction(300, seed=2)
    frame.loc[frame.index[:10], "a"] = np.nan  # a logistic regression takes no missing value
    data = write_export(tmp_path / "d.parquet", frame, NUMERICAL, CATEGORICAL)
    seen = interaction(300, seed=4)
    champion = Pipeline([("model", LogisticRegression())]).fit(seen[["a", "b"]], seen["label"])
    uri, sha256 = save_model(champion, str(tmp_path / "champion.skops"))
    assert main(env_for(tmp_path, data, **champion_env(uri, sha256))) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "driftwatch-trainer: fitting sklearn.linear_model._logistic.LogisticRegression failed: "
        "Input X contains NaN."
    )
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"DRIFTWATCH_ESTIMATOR": "default"}, "DRIFTWATCH_ESTIMATOR is default"),
        ({"CHAMPION": "dict"}, "the champion is a builtins.dict, not a scikit-learn estimator"),
        ({"CHAMPION": "array"}, "the champion is a numpy.ndarray, not a scikit-learn estimator"),
        ({"CHAMPION": "none"}, "no champion was given (DRIFTWATCH_CHAMPION_URI is not set)"),
    ],
)
def test_the_default_is_used_and_says_why(
    tmp_path: Path, export: Path, change: dict[str, str], why: str
) -> None:
    kind = change.pop("CHAMPION", "forest")
    artifact: Any = {
        "dict": {"weights": [0.5, -0.5], "bias": 0.1},
        "array": np.arange(4.0),
        "forest": user_pipeline(RandomForestClassifier(n_estimators=3)),
    }.get(kind)
    env = env_for(tmp_path, export, **change)
    if artifact is not None:
        data = sio.dumps(artifact)
        path = tmp_path / "champion.skops"
        path.write_bytes(data)
        env.update(champion_env(str(path), sha256_hex(data), artifact_types(data)))
    assert main(env) == 0
    fitted = result_of(tmp_path)["fitted"]
    assert fitted["source"] == "default"
    assert fitted["why"] == why
    assert fitted["estimator"] == (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier"
    )
    assert fitted["params"]["random_state"] == 0
