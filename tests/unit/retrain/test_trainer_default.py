"""The default estimator: non-linear, missing and unseen categories handled, reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from retrain.trainer.__main__ import main
from retrain.trainer.data import read_labeled, split_by_time
from retrain.trainer.estimators import default_pipeline
from retrain.trainer.model import Task, score
from tests.unit.retrain.export import write_export
from tests.unit.retrain.test_trainer_refit import CATEGORICAL, NUMERICAL, env_for, interaction


def test_the_default_learns_an_interaction_no_line_separates(tmp_path: Path) -> None:
    frame = interaction(5_000, seed=6)
    data = write_export(tmp_path / "xor.parquet", frame, NUMERICAL, CATEGORICAL)
    assert main(env_for(tmp_path, data, DRIFTWATCH_ESTIMATOR="default")) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    split = split_by_time(read_labeled(str(data)).frame, 0.2)
    scale = ColumnTransformer(
        [("numbers", StandardScaler(), list(NUMERICAL)), ("kind", OneHotEncoder(), ["kind"])]
    )
    linear = make_pipeline(scale, LogisticRegression())
    linear.fit(split.train[[*NUMERICAL, *CATEGORICAL]], split.train["label"].to_numpy())
    held_out = score(linear, Task.CLASSIFICATION, split.holdout, [*NUMERICAL, *CATEGORICAL])
    assert result["rows"]["holdout"] == len(split.holdout) == 1_000
    assert result["metrics"]["accuracy"] > 0.95
    assert held_out["accuracy"] < 0.65  # a line does no better than a coin here


def _frame(rows: int, seed: int) -> pd.DataFrame:
    """kind decides the label; a missing kind is a class of its own (label 1)."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(["x", "y", None], rows).astype(object)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "kind": kind})
    frame.loc[frame.index[::4], "a"] = np.nan
    frame["label"] = np.where(frame["kind"].isna() | (frame["kind"] == "y"), "1", "0")
    # Half the missing kinds are NaN (pandas from CSV), half None (from Parquet).
    missing = frame.index[frame["kind"].isna()]
    frame.loc[missing[::2], "kind"] = np.nan
    return frame


def test_missing_categories_are_a_category_and_unseen_ones_still_score() -> None:
    frame = _frame(3_000, seed=1)
    model = default_pipeline(Task.CLASSIFICATION, ["a"], ["kind"], len(frame))
    model.fit(frame[["a", "kind"]], frame["label"].to_numpy())
    rows = pd.DataFrame(
        {"a": [0.1, 0.1, np.nan, 0.1, 0.1], "kind": [None, np.nan, None, "x", "never-seen"]}
    )
    proba = model.predict_proba(rows)[:, 1]
    assert proba[0] == proba[1] > 0.95  # None and NaN: the same category, learnt as label 1
    assert proba[2] > 0.95
    assert proba[3] < 0.05
    assert 0.0 <= proba[4] <= 1.0


@pytest.mark.parametrize("task", list(Task))
def test_the_default_is_reproducible(task: Task) -> None:
    frame = _frame(2_500, seed=2)  # enough rows for early stopping: its split is seeded too
    target = frame["label"] if task is Task.CLASSIFICATION else frame["label"].astype(float)
    y = target.to_numpy()
    x = frame[["a", "kind"]]
    first = default_pipeline(task, ["a"], ["kind"], len(frame)).fit(x, y)
    second = default_pipeline(task, ["a"], ["kind"], len(frame)).fit(x, y)
    assert np.array_equal(first.predict(x), second.predict(x))


def test_many_categories_are_capped_below_the_boosters_bins() -> None:
    rng = np.random.default_rng(3)
    rows = 6_000
    frame = pd.DataFrame({"code": [f"c{i}" for i in rng.integers(0, 400, rows)]})
    frame["label"] = np.where(frame["code"].str.len() > 3, "1", "0")  # c100..c399 are 1
    model = default_pipeline(Task.CLASSIFICATION, [], ["code"], rows)
    model.fit(frame[["code"]], frame["label"].to_numpy())
    assert float(np.mean(model.predict(frame[["code"]]) == frame["label"])) > 0.7
