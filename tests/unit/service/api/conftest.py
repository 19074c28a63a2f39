"""An API served by uvicorn over a real socket on a migrated database, with tokens."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_session_factory
from service.api.app import create_app
from service.api.deps import ApiDeps
from service.api.server import ApiServer, serve
from service.config import Config, load_config
from service.monitoring.rendering import OnDemandHtml
from service.wiring.api import api_deps
from service.wiring.retraining import Retraining, build_retraining
from tests.unit.retrain.support import Clock, ParquetExporter, ScriptedExecutor

READ, WRITE, BOTH = "read-token-0123", "write-token-4567", "admin-token-89ab"
VERDICT = "verdict-token-cdef"
SECRET = "session-secret-of-the-api-tests-0123456789"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def config(url: str, tmp_path: Path, rollout: dict[str, Any] | None = None, **api: Any) -> Config:
    token_file = tmp_path / "admin.token"
    token_file.write_text(BOTH + "\n", encoding="utf-8")
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "database": {"url": url},
        "metrics": {"port": 0},
        "api": {
            "port": 0,
            "tokens": [
                {"name": "reader", "sha256": sha(READ), "scopes": ["read"]},
                {"name": "writer", "sha256": sha(WRITE), "scopes": ["write"]},
                {"name": "admin", "token_file": str(token_file), "scopes": ["read", "write"]},
                {"name": "controller", "sha256": sha(VERDICT), "scopes": ["verdict"]},
            ],
            "max_body_bytes": 1024,
            "session_secret": SECRET,
            **api,
        },
        "models": {
            "fraud": {
                "window": "1m",
                "features": {"amount": {"type": "numerical"}},
                "labels": {"task": "classification"},
            },
            # No labels section: labels are opt-in, so churn is watched for data drift only.
            "churn": {"window": "1m", "features": {"tenure": {"type": "numerical"}}},
        },
        "retrain": {"workdir": str(tmp_path / "runs")},
    }
    if rollout is not None:
        raw["models"]["fraud"]["rollout"] = rollout
    path = tmp_path / "driftwatch.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(path, env={})


@dataclass
class Api:
    url: str
    sessions: sessionmaker[Session]
    retraining: Retraining
    consumer: list[str | None]
    deps: ApiDeps

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """The API on each supported database kind."""
    with serving(db_url, tmp_path) as served_api:
        yield served_api


@pytest.fixture
def sqlite_api(sqlite_url: str, tmp_path: Path) -> Iterator[Api]:
    with serving(sqlite_url, tmp_path) as served_api:
        yield served_api


@contextmanager
def serving(db_url: str, tmp_path: Path) -> Iterator[Api]:
    cfg = config(db_url, tmp_path)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    clock = Clock()
    retraining = build_retraining(
        cfg, sessions, executor=ScriptedExecutor(), exporter=ParquetExporter(), clock=clock
    )
    consumer: list[str | None] = [None]
    renderer = OnDemandHtml(sessions)
    deps = api_deps(
        cfg,
        sessions,
        retraining,
        CollectorRegistry(),
        lambda: consumer[0],
        renderer.html,
        clock=clock,
    )
    stop = threading.Event()
    server: ApiServer = serve(create_app(deps), "127.0.0.1", 0, wait=stop.wait)
    try:
        yield Api(f"http://127.0.0.1:{server.port}", sessions, retraining, consumer, deps)
    finally:
        server.close()
        renderer.close()
        engine.dispose()


@contextmanager
def served(deps: ApiDeps) -> Iterator[str]:
    """Another server for a variant of the dependencies; yields its base URL."""
    stop = threading.Event()
    server = serve(create_app(deps), "127.0.0.1", 0, wait=stop.wait)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()
