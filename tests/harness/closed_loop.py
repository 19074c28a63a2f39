"""The closed loop, shared by its integration test and ``bench/closed_loop.py``.

``driftwatch run`` (a child process) ingests a real-model scenario
(``service/dev/``, ``concept`` or ``interaction``): a scikit-learn champion
scores every event, labels follow the ground-truth concept, and at the drift
point the concept changes. The service archives every event, judges each
window's labelled accuracy against the champion's reference accuracy, and its
retrain policy fires once enough post-drift labels are in; the run exports the
archived rows, the reference trainer trains a candidate through the local
executor, and the validation job scores champion and candidate on the same
holdout.

The service's config is the same for every scenario: only the champion's
reference accuracy, a measured fact about the champion, differs. The training
data is not sized to the expected detection delay (``data_window`` is an
hour): where it starts is the retrain policy's to find.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumers.synthetic import SyntheticEvent, SyntheticPlan, produce
from db.migrate import upgrade
from db.registry import RegistryRepository, Stage
from db.runs import RetrainRunRow, RunRepository, ValidationResultRow
from db.session import make_engine, make_session_factory, transaction
from db.triggers import DecisionRepository, TriggerDecisionRow
from retrain.artifacts import load_model
from retrain.errors import ArtifactError
from service.config import load_config
from service.dev.concept import (
    FRESH_BLOCK,
    ConceptStream,
    Era,
    Scenario,
    accuracy,
    champion_artifact,
    concept_streams,
    draw,
    evaluation_rows,
)
from service.dev.scenarios import SCENARIOS
from tests.harness.kafka import TestKafka
from tests.harness.scenario import ServiceProcess, write_config

WINDOW = 60  # seconds of event time
PRE_WINDOWS, POST_WINDOWS = 3, 5
RATE = 40.0  # events per second of event time: 2,400 per window
FRESH_ROWS = 20_000


def loop_model(reference_accuracy: float) -> dict[str, Any]:
    """The demo's fraud model, retrained once 4 windows' worth of post-drift labels are in."""
    return {
        "window": f"{WINDOW}s",
        "allowed_lateness": "10s",
        "prediction": {"type": "numerical", "bins": [i / 10 for i in range(11)]},
        "labels": {
            "task": "classification",
            "join_ttl": "1h",
            "reference": {"accuracy": round(reference_accuracy, 5), "n": FRESH_ROWS},
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
            "data_window": "1h",
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
    """What a closed loop did. Accuracies are on fresh rows of the scenario, which no stream,
    training or holdout holds: the champion's before and after the drift point, and the run's
    candidate's on post-drift rows drawn after the run."""

    scenario: str
    drift_point: datetime
    change_sent: float  # wall clock (epoch s) when the first post-drift event was sent
    pre: float
    post: float
    candidate: float | None  # None: the run registered no candidate, or it would not load
    candidate_error: str | None
    runs: list[RetrainRunRow]
    fired: list[TriggerDecisionRow]
    decisions: list[TriggerDecisionRow]
    gates: list[ValidationResultRow]
    log: str

    def holdout(self) -> tuple[float | None, float | None]:
        """Champion's and candidate's accuracy on the run's holdout, from its validation."""
        for g in self.gates:
            if g.gate == "min_delta" and g.metric == "accuracy" and g.slice is None:
                return g.champion_value, g.candidate_value
        return None, None

    def since_change(self, moment: datetime | None) -> float | None:
        """Wall-clock seconds from the first post-drift event sent to ``moment``."""
        return None if moment is None else moment.timestamp() - self.change_sent


def run_closed_loop(
    kafka: TestKafka,
    workdir: Path,
    database_url: str,
    topic: str,
    scenario: str = "concept",
    seed: int = 7,
    retrain: dict[str, Any] | None = None,
) -> ClosedLoop:
    """``retrain``: extra ``retrain:`` settings (another executor, for instance)."""
    chosen = SCENARIOS[scenario]
    champion_file = workdir / "champion.skops"
    champion, sha256 = champion_artifact(champion_file, seed, chosen)
    pre = accuracy(champion, evaluation_rows(seed, Era.PRE, chosen))
    post = accuracy(champion, evaluation_rows(seed, Era.POST, chosen))
    config = write_config(
        workdir / "config.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=database_url,
        topic=topic,
        group_id=f"group-{topic}",
        models={"fraud": loop_model(pre)},
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
    with transaction(sessions) as s:
        RegistryRepository(s).register(
            "fraud", "v1", str(champion_file), sha256, Stage.PRODUCTION, datetime.now(UTC)
        )
    service = ServiceProcess(config, workdir / "service.log")
    service.start()
    try:
        start, change_sent = _produce(kafka, config, seed, chosen)
        _wait_for_verdict(sessions, timeout=480)
    finally:
        service.terminate()
    with transaction(sessions) as s:
        runs = RunRepository(s).runs("fraud")
        decisions = DecisionRepository(s).decisions("fraud", limit=1000)
        gates = RunRepository(s).gates(runs[0].id) if runs else []
        version = runs[0].candidate_version_id if runs else None
        row = RegistryRepository(s).by_id(version) if version is not None else None
        candidate_at = (row.uri, row.sha256) if row is not None else None
    engine.dispose()
    candidate, error = _score_candidate(candidate_at, seed, chosen)
    return ClosedLoop(
        scenario=scenario,
        drift_point=datetime.fromtimestamp(start + PRE_WINDOWS * WINDOW, UTC),
        change_sent=change_sent,
        pre=pre,
        post=post,
        candidate=candidate,
        candidate_error=error,
        runs=runs,
        fired=[d for d in decisions if d.decision == "fired"],
        decisions=decisions,
        gates=gates,
        log=service.log_text(),
    )


def _score_candidate(
    at: tuple[str, str] | None, seed: int, scenario: Scenario
) -> tuple[float | None, str | None]:
    """The candidate's accuracy on post-drift rows drawn now, or why there is none."""
    if at is None:
        return None, "the run registered no candidate"
    try:
        # Loaded as the service would: the registry's sha256, the default trusted types.
        model = load_model(*at)
    except ArtifactError as exc:
        return None, str(exc)
    return accuracy(model, draw(FRESH_ROWS, Era.POST, seed, FRESH_BLOCK, scenario)), None


class _From:
    """``stream``'s events from index ``first`` on, as a stream of its own for :func:`produce`."""

    def __init__(self, stream: ConceptStream, first: int) -> None:
        self.stream = stream
        self.first = first
        self.plan = replace(stream.plan, start=stream.plan.start + first / stream.plan.rate)

    def event(self, index: int, event_time: float) -> SyntheticEvent:
        return self.stream.event(self.first + index, event_time)


def _produce(kafka: TestKafka, config: Path, seed: int, scenario: Scenario) -> tuple[float, float]:
    """Send the scenario (event times in the recent past, aligned to windows): the pre-drift
    events first, acknowledged, then the rest. Its start, and when the rest began."""
    cfg = load_config(config, env={})
    before = int(RATE * WINDOW * PRE_WINDOWS)
    after = int(RATE * WINDOW * POST_WINDOWS)
    start = (time.time() - (before + after) / RATE - 2 * WINDOW) // WINDOW * WINDOW
    plan = SyntheticPlan(
        model=cfg.model_specs()["fraud"],
        rate=RATE,
        start=start,
        drift_at=PRE_WINDOWS * WINDOW,
        seed=seed,
    )
    (stream,) = concept_streams([plan], str(config.parent / "champion.skops"), scenario)
    topics = cfg.kafka.topics
    producer = kafka.producer()
    try:
        produce(producer, [stream], before, topics.predictions, topics.labels)
        change_sent = time.time()
        produce(producer, [_From(stream, before)], after, topics.predictions, topics.labels)
    finally:
        producer.close()
    return float(start), change_sent


def _wait_for_verdict(sessions: Any, timeout: float) -> RetrainRunRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with transaction(sessions) as s:
            runs = RunRepository(s).runs("fraud")
        if runs and not runs[0].active:
            return runs[0]
        time.sleep(1)
    raise AssertionError(f"no retraining run reached a verdict in {timeout:.0f} s")
