"""What the trainer says it fitted (its result's ``fitted``) is kept with the candidate
version; a record that breaks the contract fails the run, naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.registry import RegistryRepository
from db.session import transaction
from retrain.lifecycle import Phase
from tests.unit.retrain.support import train_result
from tests.unit.retrain.test_runs import TRAIN, Rig

FITTED = {
    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
    "params": {"max_iter": 200, "learning_rate": 0.1},
    "rows": 4000,
    "seconds": 1.5,
}


def trained(sessions: sessionmaker[Session], tmp_path: Path, fitted: Any) -> tuple[Rig, int]:
    rig = Rig(sessions, tmp_path)
    run_id = rig.start_exported()
    driver = rig.driver()
    assert driver.tick() == {run_id: Phase.TRAINING}
    result = train_result()
    if fitted is not None:
        result["fitted"] = fitted
    rig.executor.succeed(TRAIN, result)
    driver.tick()
    return rig, run_id


@pytest.mark.parametrize("fitted", [FITTED, None])
def test_the_trainers_record_is_stored_with_the_candidate(
    sessions: sessionmaker[Session], tmp_path: Path, fitted: Any
) -> None:
    rig, run_id = trained(sessions, tmp_path, fitted)
    assert rig.run(run_id)[0] == Phase.VALIDATING
    with transaction(sessions) as s:
        candidate = RegistryRepository(s).get("fraud", f"run-{run_id}")
        assert candidate is not None
        assert candidate.training_record == fitted


@pytest.mark.parametrize(
    ("fitted", "why"),
    [
        (["HistGradientBoostingClassifier"], "fitted: expected a JSON object, got list"),
        ({"params": {"x": "y" * 5000}}, "fitted: 5021 bytes, more than 4096"),
        ({"estimator": object()}, "fitted: not JSON: "),
    ],
)
def test_a_record_that_breaks_the_contract_fails_the_run(
    sessions: sessionmaker[Session], tmp_path: Path, fitted: Any, why: str
) -> None:
    rig, run_id = trained(sessions, tmp_path, fitted)
    phase, _, reason = rig.run(run_id)
    assert phase == Phase.FAILED
    assert reason is not None and reason.startswith(f"training result unusable: {why}"), reason
    with transaction(sessions) as s:
        assert RegistryRepository(s).get("fraud", f"run-{run_id}") is None
