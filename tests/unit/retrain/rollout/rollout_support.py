"""What the rollout driver's tests share: a database with a production version and an
accepted run's candidate, scripted analyses, and a driver per (re)start."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertOutbox
from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import transaction
from drift.canary import Check, Outcome
from retrain.rollout.base import Router
from retrain.rollout.driver import RolloutDriver
from retrain.rollout.lifecycle import Fleet
from retrain.rollout.settings import RolloutSettings, RolloutStep
from retrain.rollout.span import AnalysisSettings, Span
from tests.unit.retrain.support import T0, Clock

STEPS = tuple(RolloutStep(w, timedelta(minutes=10), 100) for w in (5, 25, 50, 100))


def check(
    name: str, outcome: Outcome, n_canary: int = 1000, n_stable: int = 9000, reason: str = ""
) -> Check:
    return Check(name, outcome, 0.0, 0.1, n_canary, n_stable, reason or f"{name} {outcome}")


def healthy(span: Span) -> list[Check]:
    """What a canary as good as stable gets: every check passes."""
    return [
        check("sample_ratio", Outcome.PASS),
        check("prediction_divergence", Outcome.PASS),
        check("accuracy_noninferiority", Outcome.PASS),
    ]


@dataclass
class ScriptedAnalysis:
    """An analysis that answers from ``script`` (a function of the span) and records
    every span it was asked about."""

    script: Callable[[Span], list[Check]] = healthy
    spans: list[Span] = field(default_factory=list)

    def __call__(self, session: Session, span: Span, settings: AnalysisSettings) -> list[Check]:
        self.spans.append(span)
        return self.script(span)


class Rig:
    """Production ``v1``, an accepted run whose candidate ``run-1`` awaits its rollout."""

    def __init__(self, sessions: sessionmaker[Session], router: Router, **settings: Any):
        self.sessions = sessions
        self.clock = Clock()
        self.router = router
        self.analysis = ScriptedAnalysis()
        base: dict[str, Any] = {"model": "fraud", "steps": STEPS, "enabled": True}
        base.update(settings)
        self.settings = RolloutSettings(**base)
        with transaction(sessions) as s:
            registry = RegistryRepository(s)
            registry.register("fraud", "v1", "file:///m/v1.skops", "a" * 64, Stage.PRODUCTION, T0)
        self.run_id = self.accepted_run("run-1")

    def accepted_run(self, version: str) -> int:
        with transaction(self.sessions) as s:
            runs = RunRepository(s)
            run = runs.start("fraud", "request", "test", T0, T0, "accepted", T0)
            assert run is not None
            candidate = RegistryRepository(s).register(
                "fraud", version, f"file:///m/{version}.skops", "b" * 64, Stage.CANDIDATE, T0,
                run_id=run.id,
            )  # fmt: skip
            run.candidate_version_id = candidate.id
            runs.enter(run, "accepted", "test", T0, final=True)
            return run.id

    def fleet(self) -> Fleet:
        return Fleet({"fraud": self.router}, {"fraud": self.settings}, self.analysis, self.clock)

    def driver(self) -> RolloutDriver:
        """A fresh driver, as a restarted service builds it."""
        return RolloutDriver(self.sessions, self.fleet())

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        with transaction(self.sessions) as s:
            r = RolloutRepository(s).get(rollout_id)
            assert r is not None
            return {
                "phase": r.phase,
                "step": r.step,
                "canary_percent": r.canary_percent,
                "active": r.active,
                "reason": r.reason,
                "failed_checks": r.failed_checks,
                "paused_from": r.paused_from,
            }

    def history(self, rollout_id: int) -> list[tuple[str, int]]:
        with transaction(self.sessions) as s:
            return [(p.phase, p.step) for p in RolloutRepository(s).history(rollout_id)]

    def analyses(self, rollout_id: int) -> list[tuple[int, str, str]]:
        with transaction(self.sessions) as s:
            rows = RolloutRepository(s).analyses(rollout_id)
            return [(a.step, a.check, a.outcome) for a in rows]

    def stages(self) -> dict[str, str]:
        with transaction(self.sessions) as s:
            return {v.version: v.stage for v in RegistryRepository(s).versions("fraud")}

    def alerts(self) -> list[tuple[str, str]]:
        with transaction(self.sessions) as s:
            return [(a.kind, a.key) for a in AlertOutbox(s).events()]

    def walk(self, driver: RolloutDriver, rollout_id: int, ticks: int) -> list[str]:
        """``ticks`` ticks, ten minutes apart; the phase after each."""
        phases = []
        for _ in range(ticks):
            self.clock.advance(minutes=10)
            phases.append(str(driver.tick().get(rollout_id, self.rollout(rollout_id)["phase"])))
        return phases


def outcomes(by_percent: Mapping[int, Sequence[Check]]) -> Callable[[Span], list[Check]]:
    """A script answering by the span's canary weight (healthy where not given)."""
    return lambda span: list(by_percent.get(span.canary_percent, healthy(span)))
