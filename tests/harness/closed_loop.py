"""The closed loop, shared by its integration test and ``bench/closed_loop.py``.

``driftwatch run`` (a child process) ingests a real-model scenario
(``service/dev/``, ``concept`` or ``interaction``) served by the demo's model
server (:mod:`tests.harness.served_feed`): labels follow the ground-truth concept,
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

The service's config is the same for every scenario: only the champion's
reference accuracy, a measured fact about the champion, differs. The training
data is not sized to the expected detection delay (``data_window`` is an
hour): where it starts is the retrain policy's to find.

Sizes. A window is 10 s of event time, so that a rollout step, which lasts at least
two windows (:mod:`retrain.rollout.analysis`: only then does its span hold a whole
window however it falls on the grid), takes seconds, not minutes. The history
(3 windows before the drift point, 5 after) is sent as a burst of 2,400 events per
window; the live stream runs at 100 events per second. The steps are 25, 50 and
100%, not the default 5, 25, 50, 100: at 100 events per second a 5% canary gets 50
events a window, and its divergence check needs 200, so it would hold for four
windows to protect traffic the bench does not have. 25% gives one window 250 canary
events, 50% (the deciding step, where labelled accuracy must pass) 500 each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from consumers.synthetic import SyntheticPlan
from db.canary_reads import labelled_shares
from db.migrate import upgrade
from db.outbox import AlertEventRow, AlertOutbox
from db.registry import ModelVersionRow, RegistryRepository, Stage
from db.rollouts import RolloutAnalysisRow, RolloutPhaseRow, RolloutRepository, RolloutRow
from db.runs import RetrainRunRow, RunRepository, ValidationResultRow
from db.session import make_engine, make_session_factory, transaction
from db.triggers import DecisionRepository, TriggerDecisionRow
from drift.performance import ClassificationSketch, PerformanceSketch
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
from service.dev.scenarios import SCENARIOS
from service.dev.serving import ModelServer, ServedStream
from tests.harness.kafka import TestKafka
from tests.harness.scenario import ServiceProcess, write_config
from tests.harness.served_feed import Feed

WINDOW = 10  # seconds of event time
PRE_WINDOWS, POST_WINDOWS = 3, 5
RATE = 240.0  # events per second of event time in the history: 2,400 per window
LIVE_RATE = 100.0  # events per second of the live stream
AFTER_WINDOWS = 4  # windows of the promoted version that measure the accuracy after promotion
FRESH_ROWS = 20_000
STEPS = (25, 50, 100)
# The canary's prediction histogram against stable's (Jensen-Shannon distance, base 2).
# Measured on 5,000 post-drift rows, seed 7, the champion against its refit on 5,000
# others: 0.68 on ``concept`` (the drifted champion scores nearly every row above 0.9),
# 0.12 on ``interaction``. A candidate that heals concept drift is meant to predict
# otherwise than the drifted champion, so the default 0.1 would roll back both; 0.85
# still fails a canary whose scores are all at the other end of the range.
DIVERGENCE_THRESHOLD = 0.85


def loop_model(reference_accuracy: float, router_file: Path, roll_out: bool) -> dict[str, Any]:
    """The demo's fraud model, retrained once 4 windows' worth of post-drift labels are in,
    and (``roll_out``) rolled out through the ``file`` router at ``router_file``."""
    return {
        "window": f"{WINDOW}s",
        "allowed_lateness": "2s",
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
        "rollout": {
            "enabled": roll_out,
            "router": "file",
            "file": {"path": str(router_file)},
            "steps": [
                {"weight": w, "min_duration": f"{2 * WINDOW}s", "min_events": 200} for w in STEPS
            ],
            "step_deadline": "2m",
            "analysis": {
                "min_events": 200,
                "min_labeled": 200,
                "margin": 0.02,
                "divergence_threshold": DIVERGENCE_THRESHOLD,
            },
        },
    }


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


@dataclass
class _Stored:
    """What the service stored, read back after it stopped."""

    runs: list[RetrainRunRow]
    decisions: list[TriggerDecisionRow]
    gates: list[ValidationResultRow]
    candidate_at: tuple[str, str] | None
    rollout: RolloutRow | None
    phases: list[RolloutPhaseRow]
    analyses: list[RolloutAnalysisRow]
    alerts: list[AlertEventRow]
    versions: list[ModelVersionRow]


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
        after = _follow(sessions, feed, roll_out)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; service log:\n{service.log_text()[-4000:]}") from exc
    finally:
        feed.stop()
        service.terminate()
    stored = _read(sessions)
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
    feed = Feed(kafka, stream, (topics.predictions, topics.labels), before, after, LIVE_RATE)
    return feed, float(start)


def _follow(
    sessions: sessionmaker[Session], feed: Feed, roll_out: bool
) -> tuple[float | None, int, int]:
    """Wait for the run's verdict, its rollout's end and, once promoted, the labelled
    pairs of :data:`AFTER_WINDOWS` windows after the promotion; their accuracy."""
    run = _wait(sessions, feed, 480, "a retraining run's verdict", _verdict)
    if not roll_out or run.verdict != "accepted":
        return None, 0, 0
    rollout = _wait(sessions, feed, 480, "the rollout's end (or a pause)", _rollout_over)
    if rollout.phase != "promoted" or rollout.finished_at is None:
        return None, 0, 0
    with transaction(sessions) as s:
        row = RegistryRepository(s).by_id(rollout.canary_version_id)
        assert row is not None
        version = row.version
    return _after(sessions, feed, version, rollout.finished_at)


def _after(
    sessions: sessionmaker[Session], feed: Feed, version: str, since: datetime
) -> tuple[float | None, int, int]:
    """``version``'s accuracy in the :data:`AFTER_WINDOWS` windows that start after
    ``since``, once the service holds every labelled pair of them."""
    first = math.ceil(since.timestamp() / WINDOW) * WINDOW
    windows = [first + i * WINDOW for i in range(AFTER_WINDOWS)]
    start = datetime.fromtimestamp(first, UTC)
    end = datetime.fromtimestamp(first + AFTER_WINDOWS * WINDOW, UTC)

    def complete(s: Session) -> tuple[int, int] | None:
        sent = feed.sent()
        if max(sent, default=0) < windows[-1] + WINDOW:
            return None  # the feed has not yet sent every event of the windows
        pairs = correct = 0
        for share in labelled_shares(s, "fraud", (version,), start, end):
            sketch = PerformanceSketch.from_bytes(share.sketch).sketch
            assert isinstance(sketch, ClassificationSketch)
            pairs += sum(sketch.confusion.values())
            correct += sum(n for (a, p), n in sketch.confusion.items() if a == p)
        return (pairs, correct) if pairs >= sum(sent[w] for w in windows) else None

    pairs, correct = _wait(sessions, feed, 240, f"the {AFTER_WINDOWS} windows' labels", complete)
    return correct / pairs, pairs, AFTER_WINDOWS


def _verdict(s: Session) -> RetrainRunRow | None:
    runs = RunRepository(s).runs("fraud")
    return runs[0] if runs and not runs[0].active else None


def _rollout_over(s: Session) -> RolloutRow | None:
    rollouts = RolloutRepository(s).rollouts("fraud")
    if rollouts and (not rollouts[0].active or rollouts[0].phase == "paused"):
        return rollouts[0]
    return None


def _wait(
    sessions: sessionmaker[Session],
    feed: Feed,
    timeout: float,
    what: str,
    probe: Callable[[Session], Any],
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        feed.check()
        with transaction(sessions) as s:
            found = probe(s)
        if found is not None:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {what} in {timeout:.0f} s")


def _read(sessions: sessionmaker[Session]) -> _Stored:
    with transaction(sessions) as s:
        runs = RunRepository(s).runs("fraud")
        registry = RegistryRepository(s)
        version = runs[0].candidate_version_id if runs else None
        row = registry.by_id(version) if version is not None else None
        rollouts = RolloutRepository(s).rollouts("fraud")
        rollout = rollouts[0] if rollouts else None
        return _Stored(
            runs=runs,
            decisions=DecisionRepository(s).decisions("fraud", limit=1000),
            gates=RunRepository(s).gates(runs[0].id) if runs else [],
            candidate_at=(row.uri, row.sha256) if row is not None else None,
            rollout=rollout,
            phases=RolloutRepository(s).history(rollout.id) if rollout else [],
            analyses=RolloutRepository(s).analyses(rollout.id) if rollout else [],
            alerts=AlertOutbox(s).events("fraud"),
            versions=registry.versions("fraud"),
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
