"""Two replicas ticking the same PostgreSQL database, on the same causes, start one run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.models import DriftReportRow, ReferenceProfileRow
from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from db.triggers import DecisionRepository
from retrain.policy import TriggerPolicy
from tests.harness.retrain import starts
from tests.integration.test_retrain_kill import Loops, phase_of, wait_until, write_data
from tests.unit.retrain.support import model_settings
from tests.unit.retrain.test_policy import add_labels

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
W = timedelta(minutes=1)


def add_drift(sessions: Any, windows: int) -> None:
    with transaction(sessions) as s:
        profile = ReferenceProfileRow(
            model="fraud", version=1, source="x", rows=10, profile=b"", created_at=T0
        )
        s.add(profile)
        s.flush()
        for i in range(windows):
            s.add(
                DriftReportRow(
                    model="fraud",
                    model_version="v1",
                    window_start=T0 + W * i,
                    window_end=T0 + W * (i + 1),
                    profile_id=profile.id,
                    profile_version=1,
                    source="sketch",
                    events=100,
                    reference_rows=10,
                    features_drifted=1,
                    features_judged=1,
                    dataset_drift=True,
                    confirmed=True,
                    created_at=T0,
                )
            )


@pytest.mark.parametrize("held_back", [False, True])
def test_racing_policy_ticks_on_postgresql_start_one_run(pg_url: str, held_back: bool) -> None:
    """Eight deciders released at once by a barrier, many times over, on one cause (held
    back first for too few labels, then racing to fire it once they are in)."""
    engine = make_engine(pg_url, connect_timeout=5)
    sessions = make_session_factory(engine)
    add_drift(sessions, 3)
    settings = {"fraud": model_settings(drift_windows=3, min_new_labels=100 if held_back else 0)}
    if held_back:
        (held,) = TriggerPolicy(sessions, settings, lambda: T0).tick()
        assert held.decision == "suppressed"
        add_labels(sessions, T0, 500)
    barrier = threading.Barrier(8)
    made: list[Any] = []
    errors: list[BaseException] = []

    def replica() -> None:
        policy = TriggerPolicy(make_session_factory(make_engine(pg_url)), settings, lambda: T0)
        try:
            for _ in range(5):
                barrier.wait()
                made.extend(policy.tick())
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [(d.cause, d.decision) for d in made] == [("drift", "fired")]
    with transaction(sessions) as s:
        assert len(RunRepository(s).runs("fraud")) == 1
        assert [d.decision for d in DecisionRepository(s).decisions("fraud")] == ["fired"]
    engine.dispose()


def test_two_replica_processes_on_one_drift_cause_run_one_job_of_each_kind(
    pg_url: str, tmp_path: Path
) -> None:
    from tests.integration.test_retrain_kill import write_config

    config = write_config(tmp_path / "config.yaml", pg_url, tmp_path)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["models"]["fraud"]["retrain"].update(
        {"enabled": True, "drift_windows": 2, "min_new_labels": 0, "on_concept_alarm": False}
    )
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    directory = tmp_path / "marks"
    directory.mkdir()
    sessions = make_session_factory(make_engine(pg_url))
    with transaction(sessions) as s:
        RegistryRepository(s).register(
            "fraud", "v1", "file:///champion.bin", "a" * 64, Stage.PRODUCTION, T0
        )
    loops = Loops(config, write_data(tmp_path / "data.parquet"), directory)
    try:
        loops.start()
        loops.start()
        add_drift(sessions, 2)
        wait_until(lambda: len(_runs(sessions)) == 1, 60, "a run")
        (run_id,) = _runs(sessions)
        wait_until(lambda: phase_of(sessions, run_id)[0] == "accepted", 120, "the verdict")
        assert [(d[0], d[1]) for d in _decisions(sessions)] == [("drift", "fired")]
        assert _runs(sessions) == [run_id]
        began = starts(directory)
        assert (began.count("export"), began.count("train"), began.count("validate")) == (1, 1, 1)
    finally:
        loops.close()


def _runs(sessions: Any) -> list[int]:
    with transaction(sessions) as s:
        return [r.id for r in RunRepository(s).runs("fraud")]


def _decisions(sessions: Any) -> list[tuple[str, str, str]]:
    with transaction(sessions) as s:
        return [(d.cause_kind, d.decision, d.reason) for d in DecisionRepository(s).decisions()]
