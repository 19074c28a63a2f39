"""``models.*.retrain`` keys for the trainer (trusted_types, estimator, search_budget,
min_train_rows): checked at start-up naming the key, and given to every job as the
documented environment contract."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import transaction
from retrain.lifecycle import Phase
from service.config import load_config
from service.wiring.retraining import build_retraining, model_settings
from tests.unit.retrain.support import SHA, T0, ScriptedExecutor
from tests.unit.service.test_config import BASE, problems, write
from tests.unit.service.test_config_retrain import with_retrain

TREE = "sklearn.tree._tree.Tree"
FOREST = "sklearn.ensemble._forest.RandomForestClassifier"


def test_the_defaults(tmp_path: Path) -> None:
    r = model_settings(load_config(write(tmp_path, BASE), {}))["fraud"]
    assert (r.trusted_types, r.estimator, r.search_budget, r.min_train_rows) == (
        (),
        "champion",
        timedelta(0),
        1000,
    )


@pytest.mark.parametrize(
    ("retrain", "expected"),
    [
        (
            {"trusted_types": ["RandomForestClassifier"]},
            "config: models.fraud.retrain.trusted_types: 'RandomForestClassifier' "
            "is not a type name; expected module.Class",
        ),
        (
            {"trusted_types": [f"{TREE}, {FOREST}"]},
            f"config: models.fraud.retrain.trusted_types: '{TREE}, {FOREST}' is not",
        ),
        ({"trusted_types": TREE}, "config: models.fraud.retrain.trusted_types:"),
        ({"estimator": "xgboost"}, "config: models.fraud.retrain.estimator:"),
        ({"search_budget": -5}, "config: models.fraud.retrain.search_budget:"),
        ({"search_budget": "a while"}, "config: models.fraud.retrain.search_budget:"),
        ({"min_train_rows": 0}, "config: models.fraud.retrain.min_train_rows:"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, retrain: dict[str, Any], expected: str) -> None:
    (line,) = problems(tmp_path, with_retrain(**retrain))
    assert line.startswith(expected), line


@pytest.mark.parametrize("executor", ["local", "kubernetes"])
def test_the_keys_reach_every_job_of_the_model(
    sessions: sessionmaker[Session], tmp_path: Path, executor: str
) -> None:
    """The spec's env is what both executors hand the job (``JobSpec.contract_env``)."""
    raw = with_retrain(
        trusted_types=[TREE, FOREST], estimator="default", search_budget="90s", min_train_rows=5
    )
    if executor == "kubernetes":
        template = write(tmp_path, {"kind": "Job"}, "job.yaml")
        raw["retrain"] = {
            "executor": "kubernetes",
            "kubernetes": {"namespace": "ml", "template": str(template)},
        }
    cfg = load_config(write(tmp_path, raw), {})
    loop = build_retraining(cfg, sessions, executor=ScriptedExecutor()).driver.loop
    assert loop.models["fraud"].min_train_rows == 5
    with transaction(sessions) as s:
        champion = RegistryRepository(s).register(
            "fraud", "v1", "file:///models/v1.skops", SHA, Stage.PRODUCTION, T0
        )
        run = RunRepository(s).start("fraud", "manual", "x", T0, T0, Phase.PENDING, T0)
        assert run is not None
        run.champion_version_id = champion.id
        train, validate = loop.train_spec(run, s).env, loop.validate_spec(run, s).env
    trusted = f"{TREE},{FOREST}"
    assert train["DRIFTWATCH_TRUSTED_TYPES"] == validate["DRIFTWATCH_TRUSTED_TYPES"] == trusted
    assert (train["DRIFTWATCH_ESTIMATOR"], train["DRIFTWATCH_SEARCH_SECONDS"]) == ("default", "90")
    assert train["DRIFTWATCH_CHAMPION_URI"] == validate["DRIFTWATCH_CHAMPION_URI"]
    assert train["DRIFTWATCH_CHAMPION_SHA256"] == SHA
    assert "DRIFTWATCH_ESTIMATOR" not in validate


def test_unset_keys_add_nothing_but_the_estimator(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    cfg = load_config(write(tmp_path, BASE), {})
    loop = build_retraining(cfg, sessions, executor=ScriptedExecutor()).driver.loop
    with transaction(sessions) as s:
        run = RunRepository(s).start("fraud", "manual", "x", T0, T0, Phase.PENDING, T0)
        assert run is not None
        train, validate = loop.train_spec(run, s).env, loop.validate_spec(run, s).env
    assert set(train) == {"DRIFTWATCH_TASK", "DRIFTWATCH_HOLDOUT_SHARE", "DRIFTWATCH_ESTIMATOR"}
    assert set(validate) == {"DRIFTWATCH_TASK", "DRIFTWATCH_HOLDOUT_SHARE"}
