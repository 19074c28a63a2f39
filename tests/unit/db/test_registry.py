"""The model registry and the run tables' uniqueness rules, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.registry import ProductionExists, RegistryRepository, Stage, VersionExists
from db.runs import RunRepository
from db.session import transaction

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
SHA_A, SHA_B = "a" * 64, "b" * 64


def test_one_production_version_per_model(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        reg = RegistryRepository(s)
        reg.register("fraud", "v1", "file:///m/v1.skops", SHA_A, Stage.PRODUCTION, NOW)
        reg.register("churn", "v1", "file:///c/v1.skops", SHA_A, Stage.PRODUCTION, NOW)
        with pytest.raises(ProductionExists, match="fraud has a production version"):
            reg.register("fraud", "v2", "file:///m/v2.skops", SHA_B, Stage.PRODUCTION, NOW)
        v2 = reg.register("fraud", "v2", "file:///m/v2.skops", SHA_B, Stage.CANDIDATE, NOW)
        with pytest.raises(ProductionExists):
            reg.set_stage(v2, Stage.PRODUCTION, NOW)
    with transaction(sessions) as s:
        reg = RegistryRepository(s)
        production = reg.production("fraud")
        assert production is not None and production.version == "v1"
        assert [(v.version, v.stage) for v in reg.versions("fraud")] == [
            ("v1", "production"),
            ("v2", "candidate"),
        ]


def test_registering_a_version_again_returns_it_and_other_content_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as s:
        reg = RegistryRepository(s)
        first = reg.register("fraud", "v1", "u1", SHA_A, Stage.CANDIDATE, NOW, metrics={"a": 1})
        again = reg.register("fraud", "v1", "u1", SHA_A, Stage.CANDIDATE, NOW)
        assert again.id == first.id
        with pytest.raises(VersionExists, match="fraud version v1 is registered already"):
            reg.register("fraud", "v1", "u1", SHA_B, Stage.CANDIDATE, NOW)
        assert first.metric_values == {"a": 1}


def test_one_active_run_per_model(sessions: sessionmaker[Session]) -> None:
    start, end = NOW - timedelta(days=7), NOW
    with transaction(sessions) as s:
        runs = RunRepository(s)
        first = runs.start("fraud", "manual", "why", start, end, "pending", NOW)
        assert first is not None
        assert runs.start("fraud", "drift", "again", start, end, "pending", NOW) is None
        assert runs.start("churn", "drift", "other model", start, end, "pending", NOW) is not None
        runs.enter(first, "failed", "boom", NOW, final=True)
        second = runs.start("fraud", "drift", "after the first ended", start, end, "pending", NOW)
        assert second is not None
    with transaction(sessions) as s:
        runs = RunRepository(s)
        assert [r.id for r in runs.active("fraud")] == [second.id]
        assert [(p.phase, p.note) for p in runs.history(first.id)] == [
            ("pending", "why"),
            ("failed", "boom"),
        ]
