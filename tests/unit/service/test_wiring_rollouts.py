"""The rollout wiring: the config's ``rollout`` sections become each model's router and
settings, an accepted run of the service's run driver starts its rollout, and the
leader's ``rollout`` job drives it to the end."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from consumers.progress import ConsumerProgress
from db.registry import RegistryRepository, Stage
from db.session import transaction
from retrain.rollout.driver import RolloutDriver
from retrain.rollout.file import FileRouter
from service.config import Config
from service.metric_feeds import ReportMetrics, RolloutMetrics
from service.metrics import Metrics
from service.scheduler import Job
from service.wiring.jobs import retraining_for, scheduled_jobs
from service.wiring.monitoring import build_evaluator
from service.wiring.retraining import build_retraining
from service.wiring.rollouts import build_rollouts, rollouts_for
from service.wiring.watches import build_tally, build_watches
from tests.unit.retrain.rollout.rollout_support import ScriptedAnalysis
from tests.unit.retrain.support import T0, Clock
from tests.unit.service.test_config import BASE, load
from tests.unit.service.test_scheduler import Rebinned, sample


def config(tmp_path: Path, db_url: str, **rollout: Any) -> Config:
    raw = copy.deepcopy(BASE)
    raw["database"]["url"] = db_url
    raw["models"]["fraud"]["rollout"] = {
        "router": "file",
        "file": {"path": str(tmp_path / "split.json")},
        "steps": [
            {"weight": 20, "min_duration": "0s", "min_events": 1},
            {"weight": 100, "min_duration": "0s", "min_events": 1},
        ],
        **rollout,
    }
    return load(tmp_path, raw)


def test_a_model_without_an_enabled_rollout_still_has_its_rollouts_driven(
    tmp_path: Path, db_url: str, sessions: sessionmaker[Session]
) -> None:
    """``enabled`` only decides whether an accepted run starts a rollout by itself: one
    started on demand is ticked by the same job."""
    cfg = config(tmp_path, db_url)
    rollouts = rollouts_for(cfg, sessions)
    assert not rollouts.fleet.models["fraud"].enabled
    assert {j.name for j in service_jobs(cfg, sessions, rollouts)} >= {"rollout"}


def test_the_rollout_job_drives_an_accepted_runs_rollout_through_the_file_router(
    tmp_path: Path, db_url: str, sessions: sessionmaker[Session]
) -> None:
    cfg = config(tmp_path, db_url, enabled=True)
    clock = Clock()
    metrics = Metrics()
    rollouts = build_rollouts(
        cfg, sessions, analyse=ScriptedAnalysis(), clock=clock, observer=RolloutMetrics(metrics)
    )
    assert isinstance(rollouts.fleet.routers["fraud"], FileRouter)
    assert rollouts.fleet.models["fraud"].task == "regression"  # numerical predictions
    retraining = retraining_for(cfg, sessions, Metrics(), rollouts)
    assert retraining.driver.on_accepted == rollouts.on_accepted
    jobs = {j.name: j for j in service_jobs(cfg, sessions, rollouts)}
    assert jobs["rollout"].every == cfg.retrain.tick
    assert all(step.leader_only for step in jobs["rollout"].steps)

    with transaction(sessions) as s:
        registry = RegistryRepository(s)
        registry.register("fraud", "v1", "file:///m/v1.skops", "a" * 64, Stage.PRODUCTION, T0)
    run = retraining.policy.request("fraud", "operator asked")
    assert run.run_id is not None
    candidate = f"run-{run.run_id}"
    accept(sessions, run.run_id, rollouts.on_accepted, clock)
    (step,) = jobs["rollout"].steps
    split = tmp_path / "split.json"
    step.work()
    assert json.loads(split.read_text())["canary_percent"] == 20
    r = metrics.registry
    assert sample(r, "driftwatch_rollout_phase", model="fraud", phase="progressing") == 1
    assert sample(r, "driftwatch_rollout_phase", model="fraud", phase="pending") == 0
    assert sample(r, "driftwatch_rollout_canary_percent", model="fraud") == 20
    for _ in range(2):
        clock.advance(minutes=1)
        step.work()
    # Promoting: the file serves the candidate alone; the registry moves on the tick
    # that finds the router done, in the transaction that enters promoted.
    document = json.loads(split.read_text())
    assert (document["stable"]["version"], document["canary"]) == (candidate, None)
    assert stages(sessions) == {"v1": "production", candidate: "canary"}
    step.work()
    assert stages(sessions) == {"v1": "archived", candidate: "production"}
    assert sample(r, "driftwatch_rollout_phase", model="fraud", phase="promoting") == 0
    assert sample(r, "driftwatch_rollout_canary_percent", model="fraud") == 0
    analyses = "driftwatch_rollout_analyses_total"
    # Two steps judged, each on the scripted analysis' three passing checks.
    assert sample(r, analyses, model="fraud", check="sample_ratio", outcome="pass") == 2


def stages(sessions: sessionmaker[Session]) -> dict[str, str]:
    with transaction(sessions) as s:
        return {v.version: v.stage for v in RegistryRepository(s).versions("fraud")}


def accept(
    sessions: sessionmaker[Session],
    run_id: int,
    on_accepted: Callable[[Session, Any, Any], None],
    clock: Clock,
) -> None:
    """The run accepted with a candidate, as the run driver's validating step ends."""
    from db.runs import RunRepository

    with transaction(sessions) as s:
        runs = RunRepository(s)
        run = runs.get(run_id)
        assert run is not None
        candidate = RegistryRepository(s).register(
            "fraud", f"run-{run_id}", "file:///m/c.skops", "b" * 64, Stage.CANDIDATE, T0
        )
        run.candidate_version_id = candidate.id
        runs.enter(run, "accepted", "test", clock(), final=True)
        on_accepted(s, run, clock())


def service_jobs(
    cfg: Config, sessions: sessionmaker[Session], rollouts: RolloutDriver
) -> list[Job]:
    metrics = Metrics()
    evaluator = build_evaluator(cfg, sessions, ReportMetrics(metrics))
    watches = build_watches(cfg, sessions, ConsumerProgress, build_tally(cfg))
    closers: list[Callable[[], object]] = []
    return scheduled_jobs(
        cfg,
        sessions,
        metrics,
        closers,
        evaluator=evaluator,
        loop=Rebinned(),
        watches=watches,
        retraining=build_retraining(cfg, sessions),
        rollouts=rollouts,
    )


def test_the_service_rolls_out_on_the_stream_analysis(
    tmp_path: Path, db_url: str, sessions: sessionmaker[Session]
) -> None:
    from retrain.rollout.analysis import analyse

    driver = rollouts_for(config(tmp_path, db_url, enabled=True), sessions, Metrics())
    assert driver is not None and driver.fleet.analyse is analyse
