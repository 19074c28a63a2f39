"""The closed loop, shared by its integration test and ``bench/closed_loop.py``.

``driftwatch run`` (a child process) ingests a real-model scenario
(``service/dev/``, ``concept`` or ``interaction``) served by the demo's model
server (:mod:`service.dev.served_feed`): labels follow the ground-truth concept,
and at the drift point the concept changes. The service archives every event,
judges each window's labelled accuracy against the champion's reference accuracy,
and its retrain policy fires once enough post-drift labels are in; the run exports
the archived rows, the reference trainer trains a candidate through the local
executor, and the validation job scores champion and candidate on the same holdout.
The accepted run starts a canary rollout through the ``file`` router that the model
server reads: the candidate serves a growing share of the live stream, each step
judged on the stream's per-version windows, until it is promoted. Then the stream
goes on for :data:`AFTER_WINDOWS` windows, served by the promoted version alone, and
their labelled pairs, as the service stored them per window and version
(``performance_aggregates``, what the rollout's analysis reads too), give the accuracy
after promotion. Every event is labelled at once, so a window's pairs are complete when
they number the events the feed sent in it.


The config, the sizes and the waits are :mod:`service.dev.loop`'s, shared with
``make demo``.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumers.synthetic import SyntheticPlan
from db.migrate import upgrade
from db.outbox import AlertEventRow
from db.registry import ModelVersionRow, RegistryRepository, Stage
from db.rollouts import RolloutAnalysisRow, RolloutPhaseRow, RolloutRow
from db.runs import RetrainRunRow, ValidationResultRow
from db.session import make_engine, make_session_factory, transaction
from db.triggers import TriggerDecisionRow
from retrain.artifacts import load_model
from retrain.errors import ArtifactError
from retrain.rollout.base import Target
from retrain.rollout.file import FileRouter
from service.config import load_config
from service.dev.concept import (
    FRESH_BLOCK,
    Era,
    Scenario,
    accuracy,
    champion_artifact,
    check_model,
    draw,
    evaluation_rows,
)
from service.dev.errors import LoopError
from service.dev.loop import (
    FRESH_ROWS,
    LIVE_RATE,
    POST_WINDOWS,
    PRE_WINDOWS,
    RATE,
    WINDOW,
    follow,
    loop_model,
    read_stored,
)
from service.dev.model_server import ModelServer
from service.dev.scenarios import SCENARIOS
from service.dev.served_feed import Feed
from service.dev.serving import ServedStream
from tests.harness.kafka import TestKafka
from tests.harness.scenario import ServiceProcess, write_config


@dataclass(frozen=True)
class ClosedLoop:
    """What a closed loop did. ``pre``, ``post`` and ``candidate`` are accuracies on fresh
    rows of the scenario, which no stream, training or holdout holds: the champion's
    before and after the drift point, and the run's candidate's on post-drift rows drawn
    after the run. ``after`` is the promoted version's accuracy on the live stream: its
    stored labelled pairs of the windows that started after the promotion
    (``after_labeled`` pairs in ``after_windows`` windows)."""

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
    rollout: RolloutRow | None
    phases: list[RolloutPhaseRow]
    analyses: list[RolloutAnalysisRow]
    alerts: list[AlertEventRow]
    versions: list[ModelVersionRow]
    served: dict[str, int]  # events per version the model server served
    after: float | None
    after_labeled: int
    after_windows: int
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

    def promoted_at(self) -> datetime | None:
        """When the rollout was promoted (None: it was not)."""
        r = self.rollout
        return r.finished_at if r is not None and r.phase == "promoted" else None


def run_closed_loop(
    kafka: TestKafka,
    workdir: Path,
    database_url: str,
    topic: str,
    scenario: str = "concept",
    seed: int = 7,
    retrain: dict[str, Any] | None = None,
    roll_out: bool = True,
) -> ClosedLoop:
    """``retrain``: extra ``retrain:`` settings (another executor, for instance);
    ``roll_out``: go on to the rollout and the promotion (else stop at the verdict)."""
    chosen = SCENARIOS[scenario]
    champion_file = workdir / "champion.skops"
    champion, sha256 = champion_artifact(champion_file, seed, chosen)
    pre = accuracy(champion, evaluation_rows(seed, Era.PRE, chosen))
    post = accuracy(champion, evaluation_rows(seed, Era.POST, chosen))
    router_file = workdir / "rollout.json"
    # The serving layer's starting point: the champion, registered as production, alone.
    FileRouter(router_file, "fraud").promote(Target("v1", str(champion_file), sha256))
    config = write_config(
        workdir / "config.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=database_url,
        topic=topic,
        group_id=f"group-{topic}",
        models={"fraud": loop_model(pre, router_file, roll_out)},
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
    feed, start = _feed(kafka, config, router_file, seed, chosen)
    service.start()
    try:
        change_sent = feed.start(timeout=300)
        after = follow(sessions, feed, roll_out)
    except (AssertionError, LoopError) as exc:
        raise AssertionError(f"{exc}; service log:\n{service.log_text()[-4000:]}") from exc
    finally:
        feed.stop()
        service.terminate()
    stored = read_stored(sessions)
    engine.dispose()
    candidate, error = _score_candidate(stored.candidate_at, seed, chosen)
    return ClosedLoop(
        scenario=scenario,
        drift_point=datetime.fromtimestamp(start + PRE_WINDOWS * WINDOW, UTC),
        change_sent=change_sent,
        pre=pre,
        post=post,
        candidate=candidate,
        candidate_error=error,
        runs=stored.runs,
        fired=[d for d in stored.decisions if d.decision == "fired"],
        decisions=stored.decisions,
        gates=stored.gates,
        rollout=stored.rollout,
        phases=stored.phases,
        analyses=stored.analyses,
        alerts=stored.alerts,
        versions=stored.versions,
        served=dict(feed.stream.served),
        after=after[0],
        after_labeled=after[1],
        after_windows=after[2],
        log=service.log_text(),
    )


def _feed(
    kafka: TestKafka, config: Path, router_file: Path, seed: int, scenario: Scenario
) -> tuple[Feed, float]:
    """The scenario's feed (history aligned to windows, ending two windows ago) and its
    start (epoch seconds of event time)."""
    cfg = load_config(config, env={})
    before = int(RATE * WINDOW * PRE_WINDOWS)
    after = int(RATE * WINDOW * POST_WINDOWS)
    start = (time.time() - (before + after) / RATE - 2 * WINDOW) // WINDOW * WINDOW
    spec = cfg.model_specs()["fraud"]
    problems = check_model(spec)
    assert not problems, problems
    plan = SyntheticPlan(
        model=spec, rate=RATE, start=start, drift_at=PRE_WINDOWS * WINDOW, seed=seed
    )
    server = ModelServer(router_file, "fraud", reread_ms=0)
    stream = ServedStream(plan, server, scenario)
    topics = cfg.kafka.topics
    assert topics.labels is not None
    feed = Feed(
        kafka.producer, stream, (topics.predictions, topics.labels), before, after, LIVE_RATE
    )
    return feed, float(start)


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
