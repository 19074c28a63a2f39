"""SIGKILL of the rollout loop at every router call, before and after it, then a
restart: the rollout ends as an undisturbed one does (the same history, analyses,
registry and served file), and no canary is served once no rollout is active.

The loop runs as a real process (:mod:`tests.harness.rollout`: the service's rollout
driver with the ``file`` router), on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.outbox import AlertOutbox
from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.rollout.file import load
from service.config import load_config
from service.wiring.rollouts import build_rollouts
from tests.harness.retrain import REPO

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 5, tzinfo=UTC)
STEPS = [5, 25, 50, 100]
# Router calls of an undisturbed rollout: a split per step, then the promotion asked
# after promoting's commit and confirmed on the next tick; or two splits, then the
# rollback asked and confirmed.
CALLS = {"healthy": 6, "fail": 4}


def write_config(tmp_path: Path, database_url: str) -> Path:
    cfg: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"], "group_id": "g"},
        "database": {"url": database_url},
        "models": {
            "fraud": {
                "window": "1m",
                "features": {"amount": {"type": "numerical"}},
                "rollout": {
                    "enabled": True,
                    "router": "file",
                    "file": {"path": str(tmp_path / "split.json")},
                    "steps": [{"weight": w, "min_duration": "0s", "min_events": 1} for w in STEPS],
                },
            }
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def start_rollout(config: Path) -> tuple[int, Any]:
    """Production v1 and an accepted run whose candidate starts rolling out."""
    cfg = load_config(config, env={})
    sessions = make_session_factory(make_engine(cfg.database.url))
    with transaction(sessions) as s:
        registry = RegistryRepository(s)
        registry.register("fraud", "v1", "file:///m/v1.skops", "a" * 64, Stage.PRODUCTION, NOW)
        runs = RunRepository(s)
        run = runs.start("fraud", "request", "kill test", NOW, NOW, "validating", NOW)
        assert run is not None
        candidate = registry.register(
            "fraud", "v2", "file:///m/v2.skops", "b" * 64, Stage.CANDIDATE, NOW, run_id=run.id
        )
        run.candidate_version_id = candidate.id
        run_id = run.id
    driver = build_rollouts(cfg, sessions, analyse=lambda *_: [], routers={})
    return driver.start("fraud", run_id), sessions


def loop(config: Path, script: str, kill: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(config.parent / "loop.log", "ab") as log:
        done = subprocess.run(
            [sys.executable, "-m", "tests.harness.rollout", str(config), script, kill],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
    return done.returncode


def state(sessions: Any, rollout_id: int, split: Path) -> dict[str, Any]:
    with transaction(sessions) as s:
        rollouts = RolloutRepository(s)
        row = rollouts.get(rollout_id)
        assert row is not None
        served = load(split)
        return {
            "phase": row.phase,
            "active": row.active,
            "history": [(p.phase, p.step) for p in rollouts.history(rollout_id)],
            "analyses": [(a.step, a.check, a.outcome) for a in rollouts.analyses(rollout_id)],
            "stages": {v.version: v.stage for v in RegistryRepository(s).versions("fraud")},
            "alerts": [a.key for a in AlertOutbox(s).events("fraud")],
            "served": None if served is None else served_split(served),
        }


def served_split(served: Any) -> tuple[str, str | None, int]:
    canary = served.canary.version if served.canary is not None else None
    return served.stable.version, canary, served.canary_percent


def expected(script: str, rollout_id: int) -> dict[str, Any]:
    """An undisturbed rollout's end."""
    if script == "healthy":
        steps = [("progressing", i) for i in range(4)]
        return {
            "phase": "promoted",
            "active": False,
            "history": [("pending", 0), *steps, ("promoting", 3), ("promoted", 3)],
            "analyses": [
                (i, c, "pass") for i in range(4) for c in ("sample_ratio", "prediction_divergence")
            ],
            "stages": {"v1": "archived", "v2": "production"},
            "alerts": [f"rollout-{rollout_id}-started", f"rollout-{rollout_id}-promoted"],
            "served": ("v2", None, 0),
        }
    return {
        "phase": "rolled_back",
        "active": False,
        "history": [
            ("pending", 0),
            ("progressing", 0),
            ("progressing", 1),
            ("rolling_back", 1),
            ("rolled_back", 1),
        ],
        "analyses": [
            (0, "sample_ratio", "pass"),
            (0, "prediction_divergence", "pass"),
            (1, "sample_ratio", "pass"),
            (1, "prediction_divergence", "fail"),
        ],
        "stages": {"v1": "production", "v2": "rejected"},
        "alerts": [f"rollout-{rollout_id}-started", f"rollout-{rollout_id}-rolled_back"],
        "served": ("v1", None, 0),
    }


KILLS = [
    (script, f"{n}:{when}")
    for script, calls in CALLS.items()
    for n in range(1, calls + 1)
    for when in ("before", "after")
]


@pytest.mark.parametrize("script", sorted(CALLS))
def test_an_undisturbed_rollout_makes_the_calls_the_kills_enumerate(
    pg_url: str, tmp_path: Path, script: str
) -> None:
    config = write_config(tmp_path, pg_url)
    rollout_id, sessions = start_rollout(config)
    assert loop(config, script, "none") == 0
    assert state(sessions, rollout_id, tmp_path / "split.json") == expected(script, rollout_id)
    calls = (tmp_path / "calls").read_text(encoding="utf-8").splitlines()
    assert len(calls) == CALLS[script], calls


@pytest.mark.parametrize(("script", "kill"), KILLS)
def test_a_rollout_killed_at_any_router_call_ends_as_an_undisturbed_one(
    pg_url: str, tmp_path: Path, script: str, kill: str
) -> None:
    config = write_config(tmp_path, pg_url)
    split = tmp_path / "split.json"
    rollout_id, sessions = start_rollout(config)
    assert loop(config, script, kill) == -9  # killed at the scripted call
    after_kill = state(sessions, rollout_id, split)
    if not after_kill["active"]:
        assert after_kill["served"][1:] == (None, 0)  # no canary without a rollout
    assert loop(config, script, "none") == 0
    assert state(sessions, rollout_id, split) == expected(script, rollout_id)
