"""A run accepted while its model's rollout is enabled starts the rollout in the
transaction of its verdict; a disabled one leaves the candidate waiting."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from db.rollouts import RolloutRepository
from db.session import transaction
from retrain.lifecycle import Loop, Phase
from retrain.rollout.driver import RolloutDriver
from retrain.rollout.fake import FakeRouter
from retrain.rollout.lifecycle import Fleet
from retrain.rollout.settings import RolloutSettings
from retrain.runs import RunDriver
from tests.unit.retrain.rollout.rollout_support import ScriptedAnalysis
from tests.unit.retrain.support import train_result, validate_result
from tests.unit.retrain.test_runs import TRAIN, VALIDATE, Rig


def accept(rig: Rig, rollouts: RolloutDriver) -> int:
    """A run taken to its verdict by a run driver that starts rollouts."""
    loop = Loop(rig.executor, rig.models, rig.settings, rig.exporter, rig.clock)
    driver = RunDriver(rig.sessions, loop, on_accepted=rollouts.on_accepted)
    run_id = rig.start()
    driver.tick()
    driver.tick()
    rig.executor.succeed(TRAIN, train_result(0.9))
    driver.tick()
    rig.executor.succeed(VALIDATE, validate_result(0.70, 0.85))
    assert driver.tick() == {run_id: Phase.ACCEPTED}
    return run_id


def rollouts(rig: Rig, *, enabled: bool) -> RolloutDriver:
    settings = {"fraud": RolloutSettings("fraud", enabled=enabled)}
    return RolloutDriver(
        rig.sessions, Fleet({"fraud": FakeRouter()}, settings, ScriptedAnalysis(), rig.clock)
    )


def test_an_accepted_run_starts_its_rollout_with_its_verdict(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    rig = Rig(sessions, tmp_path)
    driver = rollouts(rig, enabled=True)
    run_id = accept(rig, driver)
    with transaction(sessions) as s:
        (rollout,) = RolloutRepository(s).active("fraud")
        assert (rollout.run_id, rollout.phase) == (run_id, "pending")
    assert rig.stage(f"run-{run_id}") == "canary"
    assert rig.alerts() == ["retrain_started", "run_accepted", "rollout_started"]
    assert driver.tick() == {rollout.id: "progressing"}


def test_a_disabled_rollout_leaves_the_candidate_waiting_for_start(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    rig = Rig(sessions, tmp_path)
    driver = rollouts(rig, enabled=False)
    run_id = accept(rig, driver)
    with transaction(sessions) as s:
        assert RolloutRepository(s).active() == []
    assert rig.stage(f"run-{run_id}") == "candidate"
    rollout_id = driver.start("fraud", run_id)
    assert rig.stage(f"run-{run_id}") == "canary"
    assert driver.tick() == {rollout_id: "progressing"}
