"""Retention of ``detector_states`` (SQLite and PostgreSQL): the states of a version that
stopped sending go, all its partitions at once; a version still sending on any
partition, or served as production or canary, keeps them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import DetectorStateRow
from db.registry import RegistryRepository, Stage
from service.config.scheduler import RetentionConfig
from service.monitoring.retention import Retention

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def state(model: str, version: str, partition: int, days: float, detector: str = "ddm") -> Any:
    return DetectorStateRow(
        model=model, model_version=version, partition=partition, detector=detector,
        loss="zero_one", labeled=10, state="{}", updated_at=ago(days),
    )  # fmt: skip


def kept(sessions: sessionmaker[Session]) -> set[tuple[str, str, int, str]]:
    d = DetectorStateRow
    with sessions() as s:
        rows = s.execute(select(d.model, d.model_version, d.partition, d.detector))
        return {(m, v, p, name) for m, v, p, name in rows}


def test_states_of_versions_that_stopped_sending_go_in_bounded_batches(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        for p in range(3):  # stopped 40 days ago on every partition
            s.add(state("fraud", "gone", p, 40))
            s.add(state("fraud", "gone", p, 40, detector="adwin"))
        s.add(state("fraud", "one-partition-live", 0, 40))  # quiet on partition 0 only
        s.add(state("fraud", "one-partition-live", 1, 2))
        s.add(state("fraud", "prod", 0, 90))  # served, though quiet
        s.add(state("fraud", "canary", 0, 90))
        s.add(state("fraud", "young", 0, 29))
        s.add(state("churn", "gone", 0, 31))  # another model, same version name
        registry = RegistryRepository(s)
        registry.register("fraud", "prod", "file:///p", "a" * 64, Stage.PRODUCTION, ago(100))
        registry.register("fraud", "canary", "file:///c", "b" * 64, Stage.CANARY, ago(100))
        registry.register("fraud", "gone", "file:///g", "c" * 64, Stage.ARCHIVED, ago(100))
    job = Retention(
        sessions,
        RetentionConfig(detector_states="30d", batch_size=4, max_batches=1),
        backfill=86400.0,
        clock=NOW.timestamp,
    )
    assert job.tick()["detector_states"] == 4  # one batch of four, the rest waits
    assert job.tick()["detector_states"] == 3
    assert job.tick()["detector_states"] == 0
    assert kept(sessions) == {
        ("fraud", "one-partition-live", 0, "ddm"),
        ("fraud", "one-partition-live", 1, "ddm"),
        ("fraud", "prod", 0, "ddm"),
        ("fraud", "canary", 0, "ddm"),
        ("fraud", "young", 0, "ddm"),
    }


def test_detector_states_age_is_a_validated_key() -> None:
    assert RetentionConfig().detector_states == 30 * 86400.0
    try:
        RetentionConfig(detector_states="0s")
    except ValueError as exc:
        assert "detector_states" in str(exc)
    else:
        raise AssertionError("a zero age was accepted")
