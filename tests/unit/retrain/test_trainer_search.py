"""The optional search: sized to its budget, recorded, skipped with a reason; the record's size."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.naive_bayes import GaussianNB

from retrain.artifacts import TRUSTED_TYPES, artifact_types, save_model
from retrain.trainer.__main__ import main
from retrain.trainer.estimators import Choice, default_pipeline
from retrain.trainer.model import Task
from retrain.trainer.run import encode_result, fitted_record
from retrain.trainer.search import distributions, search
from tests.unit.retrain.export import write_export
from tests.unit.retrain.test_trainer_refit import (
    CATEGORICAL,
    NUMERICAL,
    champion_env,
    env_for,
    interaction,
    user_pipeline,
)


def ticks(step: float = 1.0) -> Callable[[], float]:
    """A clock that advances ``step`` seconds each time it is read."""
    steps = count()
    return lambda: next(steps) * step


@pytest.fixture(scope="module")
def rows() -> Any:
    frame = interaction(3_000, seed=8)
    return frame[["a", "b", "kind"]], frame["label"].to_numpy()


def underfit() -> Any:
    return user_pipeline(HistGradientBoostingClassifier(learning_rate=0.02, max_iter=8))


def test_the_search_is_sized_to_the_budget_and_keeps_a_better_candidate(rows: Any) -> None:
    x, y = rows
    # One timed fit reads as 1 s, and 3 s have passed when the rounds are sized: 7 s are
    # left, room for 6 rounds and the refit; 2,400 earlier rows allow 3 rounds of 200+.
    outcome = search(underfit(), x, y, budget=10.0, clock=ticks())
    record = outcome.record
    assert record["rounds"] == 3
    assert record["candidates"] == 9
    assert record["scoring"] == "neg_log_loss"
    assert record["kept"] == "best"
    assert record["best_score"] > record["base_score"]
    assert set(record["best"]) <= {
        "learning_rate",
        "max_iter",
        "min_samples_leaf",
        "l2_regularization",
        "max_leaf_nodes",
    }
    chosen = outcome.estimator.get_params()
    assert all(
        chosen[f"model__{k}"] == pytest.approx(v, rel=1e-4) for k, v in record["best"].items()
    )
    again = search(underfit(), x, y, budget=10.0, clock=ticks())
    assert again.record == record  # seeded: the same candidates, the same choice


def test_a_budget_that_affords_too_few_rounds_skips_the_search(rows: Any) -> None:
    x, y = rows
    estimator = underfit()
    outcome = search(estimator, x, y, budget=4.0, clock=ticks())
    assert outcome.estimator is estimator
    assert outcome.record == {
        "budget": 4.0,
        "skipped": "one fit takes 1 s: 2 rounds and the refit do not fit in the 1 s left of 4 s",
    }


def test_nothing_to_search_or_too_few_rows_is_said(rows: Any) -> None:
    x, y = rows
    assert search(GaussianNB(), x[["a", "b"]], y, budget=60.0).record == {
        "budget": 60.0,
        "skipped": "no known hyperparameter to search",
    }
    assert search(underfit(), x.iloc[:500], y[:500], budget=60.0).record == {
        "budget": 60.0,
        "skipped": "500 rows are too few to search",
    }


def test_distributions_are_drawn_around_the_current_values() -> None:
    spaces = distributions(default_pipeline(Task.CLASSIFICATION, ["a"], ["kind"], 5_000))
    assert set(spaces) == {
        "model__learning_rate",
        "model__max_iter",
        "model__max_leaf_nodes",
        "model__min_samples_leaf",
        "model__l2_regularization",
    }
    draws = spaces["model__learning_rate"].rvs(size=200, random_state=0)
    assert draws.min() >= 0.05 / 3 and draws.max() <= 0.15
    draws = spaces["model__max_iter"].rvs(size=200, random_state=0)
    assert draws.min() >= 500 and draws.max() <= 2_000
    draws = spaces["model__max_leaf_nodes"].rvs(size=200, random_state=0)
    assert draws.min() >= 4 and draws.max() <= 16


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "interaction.parquet"
    return write_export(path, interaction(2_500, seed=9), NUMERICAL, CATEGORICAL)


def test_the_job_records_its_search(tmp_path: Path, export: Path) -> None:
    env = env_for(tmp_path, export, DRIFTWATCH_ESTIMATOR="default")
    # An hour is many fits of 2,000 rows: the rounds are capped by the rows, not the clock
    # (1,600 earlier rows: 2 rounds, the first on 200+ rows).
    assert main({**env, "DRIFTWATCH_SEARCH_SECONDS": "3600"}) == 0
    searched = json.loads((tmp_path / "result.json").read_text())["fitted"]["search"]
    assert searched["budget"] == 3600.0
    assert searched["rounds"] == 2
    assert searched["candidates"] == 3
    assert searched["kept"] in ("best", "base")
    # A microsecond is less than one fit takes: the search is skipped and says why.
    assert main({**env, "DRIFTWATCH_SEARCH_SECONDS": "0.000001"}) == 0
    searched = json.loads((tmp_path / "result.json").read_text())["fitted"]["search"]
    assert searched["budget"] == 0.000001
    assert "do not fit in the" in searched["skipped"]
    assert main({**env, "DRIFTWATCH_SEARCH_SECONDS": "0"}) == 0
    assert "search" not in json.loads((tmp_path / "result.json").read_text())["fitted"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DRIFTWATCH_SEARCH_SECONDS": "soon"}, "DRIFTWATCH_SEARCH_SECONDS must be a number"),
        ({"DRIFTWATCH_SEARCH_SECONDS": "-1"}, "DRIFTWATCH_SEARCH_SECONDS must be a number"),
        ({"DRIFTWATCH_ESTIMATOR": "xgboost"}, "DRIFTWATCH_ESTIMATOR must be champion or default"),
        ({"DRIFTWATCH_CHAMPION_URI": "/no/model.skops"}, "DRIFTWATCH_CHAMPION_SHA256 is not set"),
    ],
)
def test_a_bad_setting_names_its_key(
    tmp_path: Path,
    export: Path,
    change: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main({**env_for(tmp_path, export), **change}) == 1
    assert capsys.readouterr().err.startswith(f"driftwatch-trainer: {message}")


class Wide(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """An estimator with 60 hyperparameters, as some wrappers have."""

    def __init__(self, **params: Any) -> None:
        for i in range(60):
            setattr(self, f"hyperparameter_{i:02d}", params.get(f"hyperparameter_{i:02d}", i))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            f"hyperparameter_{i:02d}": getattr(self, f"hyperparameter_{i:02d}") for i in range(60)
        }


def test_the_fitted_record_is_trimmed_and_the_result_stays_small(
    tmp_path: Path, export: Path
) -> None:
    why = "the champion is a some.deep.package.SomeWrapper, not a scikit-learn estimator"
    record = fitted_record(Choice(Wide(), [], why=why), Wide(), 123_456, 12.345, None)
    assert len(json.dumps(record)) < 1_024
    assert 0 < record["params_omitted"] < 60
    assert len(record["params"]) + record["params_omitted"] == 60

    # A real champion with many parameters, refitted with a search: the whole result fits.
    champion = user_pipeline(GradientBoostingClassifier(n_estimators=20, random_state=0))
    frame = interaction(500, seed=2)
    champion.fit(frame[["a", "b", "kind"]], frame["label"])
    uri, sha256 = save_model(champion, str(tmp_path / "champion.skops"))
    extra = artifact_types(Path(uri).read_bytes()) - TRUSTED_TYPES
    env = env_for(tmp_path, export, **champion_env(uri, sha256, extra))
    assert main({**env, "DRIFTWATCH_SEARCH_SECONDS": "3600"}) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert len(result["fitted"]["params"]) >= 18
    assert "search" in result["fitted"]
    assert len(encode_result(result)) < 4_096
    assert len(json.dumps(result["fitted"])) < 1_024
