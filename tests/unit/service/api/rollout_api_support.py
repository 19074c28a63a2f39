"""An API served over a real socket with the service's rollout driver: the model
``fraud`` rolls out through the ``file`` router in two steps (25 %, 100 %), judged by
the real canary analysis on streams stored the way ingestion stores them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertEventRow
from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.rollout.driver import RolloutDriver
from service.api.app import create_app
from service.api.server import serve
from service.monitoring.rendering import OnDemandHtml
from service.wiring.api import api_deps
from service.wiring.retraining import build_retraining
from service.wiring.rollouts import build_rollouts
from tests.unit.retrain.rollout.analysis_support import at
from tests.unit.retrain.support import Clock, ParquetExporter, ScriptedExecutor
from tests.unit.service.api.conftest import config


def rollout_section(split: Path, enabled: bool = True) -> dict[str, Any]:
    return {
        "enabled": enabled,
        "router": "file",
        "file": {"path": str(split)},
        "steps": [
            {"weight": 25, "min_duration": "0s", "min_events": 1},
            {"weight": 100, "min_duration": "0s", "min_events": 1},
        ],
    }


@dataclass
class RolloutApi:
    url: str
    sessions: sessionmaker[Session]
    clock: Clock
    driver: RolloutDriver | None
    split: Path

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def tick(self) -> None:
        """The leader's rollout tick."""
        assert self.driver is not None
        self.driver.tick()

    def split_file(self) -> dict[str, Any] | None:
        if not self.split.exists():
            return None
        data: dict[str, Any] = json.loads(self.split.read_text(encoding="utf-8"))
        return data

    def accepted_run(self, version: str) -> int:
        """An accepted run of ``fraud`` whose candidate ``version`` awaits its rollout."""
        with transaction(self.sessions) as s:
            runs = RunRepository(s)
            t = at(0)
            run = runs.start("fraud", "request", "test", t, t, "accepted", t)
            assert run is not None
            candidate = RegistryRepository(s).register(
                "fraud", version, f"file:///m/{version}.skops", "b" * 64, Stage.CANDIDATE, t,
                run_id=run.id,
            )  # fmt: skip
            run.candidate_version_id = candidate.id
            runs.enter(run, "accepted", "test", t, final=True)
            return run.id

    def phase(self, rollout_id: int) -> str:
        with transaction(self.sessions) as s:
            r = RolloutRepository(s).get(rollout_id)
            assert r is not None
            return r.phase

    def stage(self, version: str) -> str | None:
        with transaction(self.sessions) as s:
            row = RegistryRepository(s).get("fraud", version)
            return None if row is None else row.stage

    def alerts(self) -> list[str]:
        with transaction(self.sessions) as s:
            return [a.kind for a in s.query(AlertEventRow).order_by(AlertEventRow.id)]


@contextmanager
def rollout_api(db_url: str, tmp_path: Path, *, enabled: bool = True) -> Iterator[RolloutApi]:
    """Production ``v1`` and an accepted run whose candidate is ``v2``; the clock at
    the start of the analysis streams' time (:func:`analysis_support.at`)."""
    split = tmp_path / "split.json"
    cfg = config(db_url, tmp_path, rollout=rollout_section(split, enabled))
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    clock = Clock(at(0))
    retraining = build_retraining(
        cfg, sessions, executor=ScriptedExecutor(), exporter=ParquetExporter(), clock=clock
    )
    driver = build_rollouts(cfg, sessions, clock=clock)
    renderer = OnDemandHtml(sessions)
    deps = api_deps(
        cfg, sessions, retraining, CollectorRegistry(), lambda: None, renderer.html,
        clock=clock, rollouts=driver,
    )  # fmt: skip
    stop = threading.Event()
    server = serve(create_app(deps), "127.0.0.1", 0, wait=stop.wait)
    api = RolloutApi(f"http://127.0.0.1:{server.port}", sessions, clock, driver, split)
    with transaction(sessions) as s:
        RegistryRepository(s).register(
            "fraud", "v1", "file:///m/v1.skops", "a" * 64, Stage.PRODUCTION, at(0)
        )
    try:
        yield api
    finally:
        server.close()
        renderer.close()
        engine.dispose()
