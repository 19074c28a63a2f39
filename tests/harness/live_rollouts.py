"""Canary rollouts of many models at once, each through its own router, judged by the
service's real analysis on what the service's real ingestion stored of live traffic.

:func:`models_config` writes one model per (router, case) with its ``rollout``
section; :class:`Fleet` seeds the registry (production ``v1``, an accepted run's
candidate ``v2``) and starts every rollout, then :meth:`Fleet.run` alternates, on
the test's clock: one driver tick at a window boundary, then one window of traffic
for every model whose rollout is progressing, in the shares its router serves as read
back from the router's backend (never from what the driver asked), stored by
ingestion before the clock moves on by a window.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import transaction
from retrain.rollout.base import Router
from retrain.rollout.driver import RolloutDriver
from retrain.rollout.file import load
from retrain.rollout.lifecycle import Phase
from tests.harness.k8s.cluster import NAMESPACE
from tests.harness.k8s.routed import TOTAL_REPLICAS, RoutedCluster, Shares, Versions
from tests.harness.traffic import (
    AS_STABLE,
    PREDICTION_BINS,
    Behaviour,
    Lane,
    Traffic,
    wait_stored,
)

WINDOW = timedelta(minutes=1)
WEIGHTS = (5, 25, 50, 100)
MIN_EVENTS = 20  # canary events a step needs, and each version's for a check
STEP_DEADLINE = 2 * WINDOW


def versions(model: str) -> Versions:
    return Versions("v1", f"s3://models/{model}/v1.skops", "v2", f"s3://models/{model}/v2.skops")


def rollout_file(workdir: Path, model: str) -> Path:
    return workdir / f"{model}.json"


def router_section(kind: str, model: str, workdir: Path, kubeconfig: Path) -> dict[str, Any]:
    """The ``rollout`` keys that pick and configure router ``kind`` for ``model``."""
    cluster = {"namespace": NAMESPACE, "kubeconfig": str(kubeconfig), "request_timeout": "5s"}
    host = f"{model}.{NAMESPACE}.svc.cluster.local"
    sections: dict[str, dict[str, Any]] = {
        "file": {"file": {"path": str(rollout_file(workdir, model))}},
        "replicas": {
            "replicas": {
                **cluster,
                "stable_deployment": model,
                "canary_deployment": f"{model}-canary",
                "total_replicas": TOTAL_REPLICAS,
            }
        },
        "gateway-api": {
            "gateway_api": {
                **cluster,
                "route": model,
                "rule": "predict",
                "stable_service": f"{model}-stable",
                "canary_service": f"{model}-canary",
            }
        },
        "istio": {
            "istio": {
                **cluster,
                "virtual_service": model,
                "route": "primary",
                "stable": {"host": host, "subset": "stable"},
                "canary": {"host": host, "subset": "canary"},
            }
        },
        "kserve": {"kserve": {**cluster, "inference_service": model}},
        "manual": {},
    }
    return {"router": kind, **sections[kind]}


def model_config(router: dict[str, Any]) -> dict[str, Any]:
    steps = [{"weight": w, "min_duration": "1m", "min_events": MIN_EVENTS} for w in WEIGHTS]
    return {
        "window": "1m",
        "allowed_lateness": "10s",
        "features": {"amount": {"type": "numerical", "bins": [0.0, 10.0, 50.0]}},
        "prediction": {"type": "numerical", "bins": PREDICTION_BINS},
        "labels": {"task": "classification", "join_ttl": "1h", "min_labeled": MIN_EVENTS},
        "rollout": {
            "enabled": True,
            **router,
            "steps": steps,
            "step_deadline": "2m",
            "analysis": {
                "margin": 0.1,
                "min_labeled": MIN_EVENTS,
                "min_events": MIN_EVENTS,
                # Above the noise floor of identical versions at 20 canary events over
                # four bins (0.33 at alpha 0.01), below the shifted canary's 0.56.
                "divergence_threshold": 0.35,
            },
        },
    }


@dataclass
class Outcome:
    """How one model's rollout went: its phase after every tick, its rows at the end."""

    rollout_id: int
    timeline: list[str]
    phase: str = ""
    reason: str | None = None
    history: list[tuple[str, int, str]] | None = None
    analyses: list[tuple[int, str, str]] | None = None
    stages: dict[str, str] | None = None


class Fleet:
    """Every model's rollout, router and traffic lane; see the module docstring."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        driver: RolloutDriver,
        routers: Mapping[str, Router],
        kinds: Mapping[str, str],
        cluster: RoutedCluster,
        clock: list[datetime],
        workdir: Path,
    ) -> None:
        self.sessions, self.driver, self.routers = sessions, driver, routers
        self.workdir = workdir
        self.kinds, self.cluster, self.clock = kinds, cluster, clock
        self.outcomes: dict[str, Outcome] = {}
        # Each progressing model's requests per version, window by window.
        self.sent: dict[str, list[Counter[str]]] = defaultdict(list)

    def start(self, model: str, now: datetime) -> None:
        """Production v1, an accepted run whose candidate v2 starts rolling out."""
        v = versions(model)
        with transaction(self.sessions) as s:
            registry = RegistryRepository(s)
            registry.register(model, v.stable, v.stable_uri, "a" * 64, Stage.PRODUCTION, now)
            run = RunRepository(s).start(
                model, "request", "routers test", now, now, "accepted", now
            )
            assert run is not None
            candidate = registry.register(
                model, v.canary, v.canary_uri, "b" * 64, Stage.CANDIDATE, now, run_id=run.id
            )
            run.candidate_version_id = candidate.id
            run_id = run.id
        self.outcomes[model] = Outcome(self.driver.start(model, run_id), [])

    def served(self, model: str) -> Shares:
        """The shares of ``model``'s requests per version, read back from its router's
        backend: the file, the cluster objects, or what the manual router told the
        external controller to serve."""
        kind, v = self.kinds[model], versions(model)
        if kind == "file":
            state = load(rollout_file(self.workdir, model))
            if state is None:
                return {v.stable: 100}
            canary = {state.canary.version: state.canary_percent} if state.canary else {}
            return {state.stable.version: 100 - state.canary_percent, **canary}
        if kind == "manual":
            percent = self.routers[model].get_weights().canary_percent
            return {v.stable: 100 - percent, v.canary: percent}
        return self.cluster.served(kind, model, v)

    def run(
        self,
        traffic: Traffic,
        lanes: Mapping[str, Lane],
        rounds: int,
        on_tick: Callable[[], object] = lambda: None,
    ) -> None:
        """Tick, then a window of traffic for every progressing rollout, until none is
        active and unpaused (or ``rounds`` ticks)."""
        by_id = {o.rollout_id: m for m, o in self.outcomes.items()}
        for _ in range(rounds):
            phases = self.driver.tick()
            on_tick()
            for rollout_id, phase in phases.items():
                self.outcomes[by_id[rollout_id]].timeline.append(str(phase))
            live = [by_id[i] for i, p in phases.items() if p == "progressing"]
            if all(p is Phase.PAUSED or p.final for p in phases.values()):
                break
            start = self.clock[0]
            if live:
                shares = [(lanes[m], {k: w for k, w in self.served(m).items() if w}) for m in live]
                sent = traffic.window_of(start, shares)
                wait_stored(self.sessions, start, sent)
                for model, counts in sent.items():
                    self.sent[model].append(counts)
            self.clock[0] = start + WINDOW
        self._collect()

    def _collect(self) -> None:
        with transaction(self.sessions) as s:
            rollouts, registry = RolloutRepository(s), RegistryRepository(s)
            for model, outcome in self.outcomes.items():
                row = rollouts.get(outcome.rollout_id)
                assert row is not None
                outcome.phase, outcome.reason = row.phase, row.reason
                outcome.history = [
                    (h.phase, h.step, h.note) for h in rollouts.history(outcome.rollout_id)
                ]
                outcome.analyses = [
                    (a.step, a.check, a.outcome) for a in rollouts.analyses(outcome.rollout_id)
                ]
                outcome.stages = {r.version: r.stage for r in registry.versions(model)}


def lanes_of(canaries: Mapping[str, Behaviour], per_window: Mapping[str, int]) -> dict[str, Lane]:
    """Each model's lane: stable v1 as :data:`AS_STABLE`, the candidate v2 as given."""
    lanes: dict[str, Lane] = {}
    for model, canary in canaries.items():
        v = versions(model)
        lanes[model] = Lane(model, {v.stable: AS_STABLE, v.canary: canary}, per_window[model])
    return lanes
