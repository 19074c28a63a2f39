"""The run lifecycle with a scripted executor, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.archive.errors import ArchiveNotFound, ArchiveUnavailable
from db.outbox import AlertOutbox
from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import transaction
from retrain.executors.base import Executor
from retrain.lifecycle import Loop, Phase
from retrain.policy import TriggerPolicy
from retrain.runs import RunDriver
from retrain.settings import LoopSettings
from service.wiring.retraining import Retraining
from tests.unit.retrain.support import (
    SHA,
    T0,
    Clock,
    ParquetExporter,
    ScriptedExecutor,
    model_settings,
    train_result,
    validate_result,
)

TRAIN, VALIDATE = "driftwatch-fraud-1-train", "driftwatch-fraud-1-validate"


class Rig:
    """A database with a production champion, and a driver per (re)start. ``backend``
    builds a real executor (local, Kubernetes) anew on each restart, since a restarted
    service keeps nothing in memory; without one, the scripted executor stands in."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        tmp_path: Path,
        champion: bool = True,
        backend: Callable[[], Executor] | None = None,
    ):
        self.sessions = sessions
        self.clock = Clock()
        self.executor = ScriptedExecutor()
        self.backend = backend
        self.real = backend() if backend is not None else None
        self.exporter = ParquetExporter()
        self.models = {"fraud": model_settings()}
        self.settings = LoopSettings(tmp_path / "runs", "file:///artifacts")
        self.policy = TriggerPolicy(sessions, self.models, self.clock)
        if champion:
            with transaction(sessions) as s:
                RegistryRepository(s).register(
                    "fraud", "v1", "file:///models/v1.skops", "a" * 64, Stage.PRODUCTION, T0
                )

    def driver(self) -> RunDriver:
        """A fresh driver, as a restarted service builds it."""
        executor = self.real if self.real is not None else self.executor
        loop = Loop(executor, self.models, self.settings, self.exporter, self.clock)
        return RunDriver(self.sessions, loop)

    def restart(self) -> RunDriver:
        """A driver of a restarted service: a real executor is built anew."""
        if self.backend is not None:
            self.close()
            self.real = self.backend()
        return self.driver()

    def close(self) -> None:
        close = getattr(self.real, "close", None)
        if close is not None:
            close()

    def start(self) -> int:
        decision = self.policy.request("fraud", "operator asked")
        assert decision.decision == "fired" and decision.run_id is not None
        return decision.run_id

    def start_exported(self) -> int:
        """A started run whose first tick exported its data: the next tick starts training."""
        run_id = self.start()
        assert self.driver().tick() == {run_id: Phase.PENDING}
        return run_id

    def run(self, run_id: int) -> tuple[str, str | None, str | None]:
        with transaction(self.sessions) as s:
            row = RunRepository(s).get(run_id)
            assert row is not None
            return row.phase, row.verdict, row.failure_reason

    def history(self, run_id: int) -> list[str]:
        with transaction(self.sessions) as s:
            return [p.phase for p in RunRepository(s).history(run_id)]

    def stage(self, version: str) -> str | None:
        with transaction(self.sessions) as s:
            row = RegistryRepository(s).get("fraud", version)
            return None if row is None else row.stage

    def alerts(self) -> list[str]:
        with transaction(self.sessions) as s:
            return [a.kind for a in AlertOutbox(s).events()]


@pytest.fixture
def rig(sessions: sessionmaker[Session], tmp_path: Path) -> Rig:
    return Rig(sessions, tmp_path)


def test_a_better_candidate_goes_train_validate_accepted_one_step_per_tick(rig: Rig) -> None:
    run_id = rig.start()
    driver = rig.driver()
    # The export runs after the pending step's commit; the next tick finds its file.
    assert driver.tick() == {run_id: Phase.PENDING}
    assert rig.settings.data_path("fraud", run_id).exists() and not rig.executor.starts
    assert driver.tick() == {run_id: Phase.TRAINING}
    assert rig.executor.starts == {TRAIN: 1}
    spec = rig.executor.specs[TRAIN]
    # The trainer refits the champion: it is told where the production model is.
    assert spec.env == {
        "DRIFTWATCH_TASK": "classification",
        "DRIFTWATCH_HOLDOUT_SHARE": "0.2",
        "DRIFTWATCH_ESTIMATOR": "champion",
        "DRIFTWATCH_CHAMPION_URI": "file:///models/v1.skops",
        "DRIFTWATCH_CHAMPION_SHA256": "a" * 64,
    }
    assert driver.tick() == {run_id: Phase.TRAINING}  # still running
    rig.executor.succeed(TRAIN, train_result(0.9))
    assert driver.tick() == {run_id: Phase.VALIDATING}
    validate = rig.executor.specs[VALIDATE]
    assert validate.env["DRIFTWATCH_CHAMPION_URI"] == "file:///models/v1.skops"
    assert validate.env["DRIFTWATCH_CANDIDATE_SHA256"] == SHA
    rig.executor.succeed(VALIDATE, validate_result(0.70, 0.85))
    assert driver.tick() == {run_id: Phase.ACCEPTED}
    assert driver.tick() == {}  # nothing active
    assert rig.run(run_id) == ("accepted", "accepted", None)
    assert rig.history(run_id) == ["pending", "training", "validating", "accepted"]
    assert rig.executor.starts == {TRAIN: 1, VALIDATE: 1}
    assert rig.exporter.calls == 1
    assert rig.alerts() == ["retrain_started", "run_accepted"]
    with transaction(rig.sessions) as s:
        candidate = RegistryRepository(s).get("fraud", f"run-{run_id}")
        assert candidate is not None
        assert (candidate.stage, candidate.run_id, candidate.metric_values) == (
            "candidate",
            run_id,
            {"accuracy": 0.9},
        )
        gates = [
            (g.gate, g.champion_value, g.candidate_value, g.passed)
            for g in RunRepository(s).gates(run_id)
        ]
    assert gates == [("min_holdout", None, 100.0, True), ("min_delta", 0.70, 0.85, True)]


def test_a_worse_candidate_is_rejected_its_version_marked_and_alerted(rig: Rig) -> None:
    run_id = rig.start_exported()
    driver = rig.driver()
    driver.tick()
    rig.executor.succeed(TRAIN, train_result())
    driver.tick()
    rig.executor.succeed(VALIDATE, validate_result(0.80, 0.75))
    driver.tick()
    phase, verdict, _ = rig.run(run_id)
    assert (phase, verdict) == ("rejected", "rejected")
    assert rig.alerts() == ["retrain_started", "run_rejected"]
    with transaction(rig.sessions) as s:
        candidate = RegistryRepository(s).get("fraud", f"run-{run_id}")
        assert candidate is not None and candidate.stage == "rejected"
        production = RegistryRepository(s).production("fraud")
        assert production is not None and production.version == "v1"


def test_a_failed_training_fails_the_run_with_its_reason_and_changes_nothing_else(rig: Rig) -> None:
    run_id = rig.start_exported()
    driver = rig.driver()
    driver.tick()
    rig.executor.fail(TRAIN, "exit code 3", log="line\nValueError: bad\n")
    assert driver.tick() == {run_id: Phase.FAILED}
    assert rig.run(run_id) == ("failed", None, "training failed: exit code 3")
    with transaction(rig.sessions) as s:
        row = RunRepository(s).get(run_id)
        assert row is not None and row.train_log_tail == "line\nValueError: bad\n"
        assert [v.version for v in RegistryRepository(s).versions("fraud")] == ["v1"]
        assert RunRepository(s).gates(run_id) == []
    assert rig.executor.starts == {TRAIN: 1}
    assert rig.alerts() == ["retrain_started", "run_failed"]


def test_a_failed_validation_fails_the_run_and_judges_nothing(rig: Rig) -> None:
    run_id = rig.start_exported()
    driver = rig.driver()
    driver.tick()
    rig.executor.succeed(TRAIN, train_result())
    driver.tick()
    rig.executor.fail(VALIDATE, "sha256 mismatch for file:///models/fraud/run-1/model.skops")
    driver.tick()
    phase, verdict, reason = rig.run(run_id)
    assert (phase, verdict) == ("failed", None)
    assert reason == "validation failed: sha256 mismatch for file:///models/fraud/run-1/model.skops"
    with transaction(rig.sessions) as s:
        assert RunRepository(s).gates(run_id) == []
    assert rig.stage(f"run-{run_id}") == "rejected"  # trained, never judged good


def test_a_job_running_past_its_phase_deadline_is_cancelled_and_fails_the_run(rig: Rig) -> None:
    run_id = rig.start_exported()
    driver = rig.driver()
    driver.tick()
    rig.clock.advance(minutes=59)
    assert driver.tick() == {run_id: Phase.TRAINING}
    rig.clock.advance(minutes=1)
    assert driver.tick() == {run_id: Phase.FAILED}
    assert rig.run(run_id)[2] == "training timed out after 3600 s"
    assert rig.executor.cancelled == [TRAIN]


@pytest.mark.parametrize("phase", [Phase.TRAINING, Phase.VALIDATING])
def test_a_crash_between_the_commit_and_the_launch_launches_once_on_restart(
    rig: Rig, phase: Phase
) -> None:
    run_id = rig.start_exported()
    if phase is Phase.VALIDATING:
        rig.driver().tick()
        rig.executor.succeed(TRAIN, train_result())

    def crash(_spec: object) -> None:
        raise SystemExit("killed")

    dying = rig.driver()
    dying.loop.executor.launch = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        dying.tick()
    rig.executor.launch = ScriptedExecutor.launch.__get__(rig.executor)  # type: ignore[method-assign]
    assert rig.run(run_id)[0] == phase  # the transition was committed before the launch
    restarted = rig.driver()
    assert restarted.tick() == {run_id: phase}  # the job is missing: launched now
    assert restarted.tick() == {run_id: phase}  # and adopted from then on
    assert rig.executor.starts[TRAIN] == 1
    assert rig.executor.starts[VALIDATE] == (1 if phase is Phase.VALIDATING else 0)


def test_an_export_interrupted_before_its_rename_is_redone_and_a_finished_one_is_kept(
    rig: Rig,
) -> None:
    run_id = rig.start()
    dest = rig.settings.data_path("fraud", run_id)
    dest.parent.mkdir(parents=True)
    dest.with_suffix(".partial").write_bytes(b"half a file")
    assert rig.driver().tick() == {run_id: Phase.PENDING}
    assert rig.driver().tick() == {run_id: Phase.TRAINING}
    assert rig.exporter.calls == 1
    with transaction(rig.sessions) as s:
        row = RunRepository(s).get(run_id)
        assert row is not None and (row.data_rows, row.data_uri) == (500, str(dest))


def test_a_model_without_a_production_version_fails_saying_how_to_register_one(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    rig = Rig(sessions, tmp_path, champion=False)
    run_id = rig.start()
    rig.driver().tick()
    reason = rig.run(run_id)[2]
    assert reason is not None
    assert "has no production version" in reason and "driftwatch models register" in reason
    assert rig.exporter.calls == 0 and not rig.executor.starts


def test_no_archived_rows_fails_the_run_without_training(rig: Rig) -> None:
    rig.exporter.rows = 0
    run_id = rig.start()
    rig.driver().tick()
    phase, _, reason = rig.run(run_id)
    assert phase == "failed" and reason is not None and reason.startswith("no labelled events")
    assert not rig.executor.starts


def test_a_retriable_export_error_keeps_the_run_pending(rig: Rig) -> None:
    rig.exporter.error = ArchiveUnavailable("object store timed out")
    run_id = rig.start()
    assert rig.driver().tick() == {run_id: Phase.PENDING}
    rig.exporter.error = None
    assert rig.driver().tick() == {run_id: Phase.PENDING}  # exported now
    assert rig.driver().tick() == {run_id: Phase.TRAINING}
    assert rig.exporter.calls == 2
    dest = rig.settings.data_path("fraud", run_id)
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # no partial left


def test_a_refused_export_fails_the_run_with_the_archives_reason(rig: Rig) -> None:
    rig.exporter.error = ArchiveNotFound("no table at s3://archive/fraud/labels")
    run_id = rig.start()
    assert rig.driver().tick() == {run_id: Phase.FAILED}
    assert rig.run(run_id)[2] == (
        "exporting the training data failed: no table at s3://archive/fraud/labels"
    )
    assert rig.alerts() == ["retrain_started", "run_failed"]


def test_a_bug_in_the_exporter_is_raised_not_retried_as_an_outage(rig: Rig) -> None:
    rig.exporter.error = KeyError("amount")
    run_id = rig.start()
    with pytest.raises(KeyError, match="amount"):
        rig.driver().tick()
    assert rig.run(run_id) == ("pending", None, None)


def test_cancel_stops_the_run_and_its_jobs(rig: Rig) -> None:
    run_id = rig.start_exported()
    driver = rig.driver()
    driver.tick()
    assert driver.cancel(run_id, "operator") == Phase.CANCELLED
    assert rig.run(run_id)[0] == "cancelled"
    assert rig.executor.cancelled == [TRAIN, VALIDATE]
    assert driver.tick() == {}
    assert rig.stage(f"run-{run_id}") is None  # cancelled before training produced one


def test_cancelling_a_run_with_a_trained_candidate_rejects_that_version(rig: Rig) -> None:
    run_id = rig.start_exported()
    driver = rig.driver()
    driver.tick()
    rig.executor.succeed(TRAIN, train_result())
    assert driver.tick() == {run_id: Phase.VALIDATING}
    assert rig.stage(f"run-{run_id}") == "candidate"
    assert driver.cancel(run_id, "operator") == Phase.CANCELLED
    assert rig.stage(f"run-{run_id}") == "rejected"
    assert rig.alerts() == ["retrain_started"]  # a cancel is the operator's own doing


def test_a_validation_timing_out_rejects_the_trained_candidate(rig: Rig) -> None:
    run_id = rig.start_exported()
    driver = rig.driver()
    driver.tick()
    rig.executor.succeed(TRAIN, train_result())
    driver.tick()
    rig.clock.advance(hours=2)
    assert driver.tick() == {run_id: Phase.FAILED}
    assert rig.stage(f"run-{run_id}") == "rejected"
    with transaction(rig.sessions) as s:
        production = RegistryRepository(s).production("fraud")
        assert production is not None and production.version == "v1"  # untouched


def test_a_started_run_queues_one_retrain_started_alert_with_its_id(rig: Rig) -> None:
    run_id = rig.start()
    rig.driver().tick()
    rig.driver().tick()
    with transaction(rig.sessions) as s:
        started = [e for e in AlertOutbox(s).events() if e.kind == "retrain_started"]
        assert [(e.run_id, e.key, e.model) for e in started] == [
            (run_id, f"run-{run_id}-started", "fraud")
        ]
        payload = json.loads(started[0].payload)
    assert payload["run_id"] == run_id and payload["trigger"] == "manual"


def test_an_export_failing_past_the_training_timeout_fails_the_run(rig: Rig) -> None:
    rig.exporter.error = ArchiveUnavailable("object store timed out")
    run_id = rig.start()
    assert rig.driver().tick() == {run_id: Phase.PENDING}
    rig.clock.advance(hours=1)
    assert rig.driver().tick() == {run_id: Phase.FAILED}
    assert rig.run(run_id)[2] == (
        "exporting the training data kept failing for 3600 s: object store timed out"
    )


def test_a_run_whose_step_keeps_failing_holds_back_no_other_models_run(rig: Rig) -> None:
    # A second model whose export hits a bug: its run's step raises at every tick, and
    # it comes first (the older run).
    rig.models["aml"] = model_settings(model="aml")
    with transaction(rig.sessions) as s:
        RegistryRepository(s).register(
            "aml", "v1", "file:///models/aml.skops", "b" * 64, Stage.PRODUCTION, T0
        )
    broken = rig.policy.request("aml", "operator asked").run_id
    exporter = rig.exporter

    def export(model: str, *args: Any) -> int:
        if model == "aml":
            raise KeyError("amount")
        return exporter(model, *args)

    rig.exporter = export  # type: ignore[assignment]
    fine = rig.start()
    driver = rig.driver()
    for _ in range(2):
        with pytest.raises(KeyError, match="amount"):
            driver.tick()  # still fails, for the scheduler to count and log
    assert rig.run(fine)[0] == "training"  # exported at the first tick, training at the next
    assert broken is not None and rig.run(broken) == ("pending", None, None)


def test_a_failing_trigger_policy_stalls_neither_the_runs_nor_the_sweep(rig: Rig) -> None:
    run_id = rig.start()

    class Failing:
        def tick(self) -> None:
            raise KeyError("a model's causes")

    swept: list[bool] = []
    retraining = Retraining(Failing(), rig.driver(), lambda: swept.append(True))  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="a model's causes"):
        retraining.tick()
    assert rig.exporter.calls == 1 and swept == [True]  # the run took its step all the same
    assert rig.driver().tick() == {run_id: Phase.TRAINING}
