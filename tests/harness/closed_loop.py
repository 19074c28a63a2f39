"""The closed loop, shared by its integration test and ``bench/closed_loop.py``.

``driftwatch run`` (a child process) ingests the real-model scenario: a
scikit-learn champion scores every event, labels follow the ground-truth
concept, and at the drift point the covariates shift and the concept changes.
The service archives every event, judges each window's labelled accuracy
against the champion's reference accuracy, and its retrain policy fires on the
degradation once enough post-drift labels are in; the run exports the archived
rows, the reference trainer trains a candidate through the local executor, and
the validation job scores champion and candidate on the same holdout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumers.synthetic import SyntheticPlan, produce
from db.migrate import upgrade
from db.performance_reports import PerformanceReportRepository
from db.registry import RegistryRepository, Stage
from db.runs import RetrainRunRow, RunRepository, ValidationResultRow
from db.session import make_engine, make_session_factory, transaction
from db.triggers import DecisionRepository, TriggerDecisionRow
from service.config import load_config
from service.dev.concept import PINNED, champion_artifact, concept_streams
from tests.harness.kafka import TestKafka
from tests.harness.scenario import ServiceProcess, write_config

WINDOW = 60  # seconds of event time
PRE_WINDOWS, POST_WINDOWS = 3, 5
RATE = 40.0  # events per second of event time: 2,400 per window


def concept_model() -> dict[str, Any]:
    """The demo's fraud model, retrained on degradation once 4 post-drift windows are labelled."""
    return {
        "window": f"{WINDOW}s",
        "allowed_lateness": "10s",
        "prediction": {"type": "numerical", "bins": [i / 10 for i in range(11)]},
        "labels": {
            "task": "classification",
            "join_ttl": "1h",
            "reference": {"accuracy": PINNED.champion_pre, "n": 20_000},
        },
        "features": {
            "amount": {"type": "numerical"},
            "age_days": {"type": "numerical"},
            "txn_per_hour": {"type": "numerical"},
            "distance_km": {"type": "numerical", "nullable": True},
            "country": {"type": "categorical"},
            "channel": {"type": "categorical", "nullable": True},
        },
        "retrain": {
            "enabled": True,
            "drift_windows": 0,  # no reference profile in this scenario: verdicts come from labels
            "on_degradation": True,
            "on_concept_alarm": True,
            "min_new_labels": int(RATE * WINDOW * (POST_WINDOWS - 1)),
            "cooldown": "1h",
            "data_window": f"{WINDOW * (POST_WINDOWS - 1)}s",
            "holdout_share": 0.2,
            "min_holdout": 500,
            "gates": {"accuracy": {"min_delta": 0.05}},
            "slice_feature": "country",
            "slice_max_degradation": 0.05,
            "train_timeout": "5m",
            "validate_timeout": "5m",
        },
    }


@dataclass(frozen=True)
class ClosedLoop:
    drift_point: datetime
    pre: float  # the champion's labelled accuracy in the windows before the drift point
    # ... and on the run's holdout (the newest post-drift rows), beside the candidate
    post: float
    runs: list[RetrainRunRow]
    fired: list[TriggerDecisionRow]
    decisions: list[TriggerDecisionRow]
    gates: list[ValidationResultRow]
    log: str

    @property
    def candidate(self) -> float | None:
        """The candidate's holdout accuracy, from its validation."""
        for g in self.gates:
            if g.gate == "min_delta" and g.metric == "accuracy" and g.slice is None:
                return g.candidate_value
        return None


def run_closed_loop(
    kafka: TestKafka,
    workdir: Path,
    database_url: str,
    topic: str,
    seed: int = 7,
    retrain: dict[str, Any] | None = None,
) -> ClosedLoop:
    """``retrain``: extra ``retrain:`` settings (another executor, for instance)."""
    config = write_config(
        workdir / "config.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=database_url,
        topic=topic,
        group_id=f"group-{topic}",
        models={"fraud": concept_model()},
        extra={
            "evaluation": {"interval": "1s", "idle_partition_timeout": "3s"},
            "retrain": {
                "workdir": str(workdir / "runs"),
                "artifacts_uri": str(workdir / "models"),
                "tick": "1s",
                **(retrain or {}),
            },
        },
    )
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    champion = workdir / "champion.skops"
    _, sha256 = champion_artifact(champion, seed)
    with transaction(sessions) as s:
        RegistryRepository(s).register(
            "fraud", "v1", str(champion), sha256, Stage.PRODUCTION, datetime.now(UTC)
        )
    service = ServiceProcess(config, workdir / "service.log")
    service.start()
    try:
        start = _produce(kafka, config, seed)
        _wait_for_verdict(sessions, timeout=480)
        drift_point = start + PRE_WINDOWS * WINDOW
        _wait_for_reports(sessions, drift_point, timeout=60)
    finally:
        service.terminate()
    with transaction(sessions) as s:
        reports = PerformanceReportRepository(s).rows("fraud", limit=1000)
        runs = RunRepository(s).runs("fraud")
        decisions = DecisionRepository(s).decisions("fraud", limit=1000)
        gates = RunRepository(s).gates(runs[0].id) if runs else []
    engine.dispose()
    before = [r for r in reports if r.window_end.timestamp() <= drift_point]
    champion_holdout = next(
        (g.champion_value for g in gates if g.gate == "min_delta" and g.metric == "accuracy"),
        None,
    )
    return ClosedLoop(
        drift_point=datetime.fromtimestamp(drift_point, UTC),
        pre=_accuracy(before),
        post=float("nan") if champion_holdout is None else champion_holdout,
        runs=runs,
        fired=[d for d in decisions if d.decision == "fired"],
        decisions=decisions,
        gates=gates,
        log=service.log_text(),
    )


def _produce(kafka: TestKafka, config: Path, seed: int) -> float:
    """Send the scenario (event times in the recent past, aligned to windows); its start."""
    cfg = load_config(config, env={})
    count = int(RATE * WINDOW * (PRE_WINDOWS + POST_WINDOWS))
    start = (time.time() - count / RATE - 2 * WINDOW) // WINDOW * WINDOW
    plan = SyntheticPlan(
        model=cfg.model_specs()["fraud"],
        rate=RATE,
        start=start,
        drift_at=PRE_WINDOWS * WINDOW,
        seed=seed,
    )
    streams = concept_streams([plan], str(config.parent / "champion.skops"))
    producer = kafka.producer()
    try:
        produce(producer, streams, count, cfg.kafka.topics.predictions, cfg.kafka.topics.labels)
    finally:
        producer.close()
    return float(start)


def _wait_for_verdict(sessions: Any, timeout: float) -> RetrainRunRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with transaction(sessions) as s:
            runs = RunRepository(s).runs("fraud")
        if runs and not runs[0].active:
            return runs[0]
        time.sleep(1)
    raise AssertionError(f"no retraining run reached a verdict in {timeout:.0f} s")


def _wait_for_reports(sessions: Any, drift_point: float, timeout: float) -> None:
    """Until the windows before the drift point have their performance reports (or time is up:
    a report waits for its window's labels, and the figure uses what is there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with transaction(sessions) as s:
            reports = PerformanceReportRepository(s).rows("fraud", limit=1000)
        if sum(r.window_end.timestamp() <= drift_point for r in reports) >= PRE_WINDOWS:
            return
        time.sleep(1)


def _accuracy(reports: list[Any]) -> float:
    labeled = sum(r.labeled for r in reports if r.accuracy is not None)
    if not labeled:
        return float("nan")
    return sum(r.accuracy * r.labeled for r in reports if r.accuracy is not None) / labeled
