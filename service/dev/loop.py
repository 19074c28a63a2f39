"""The closed loop's config, sizes and waits, shared by ``make demo``
(:mod:`service.dev.demo`) and the closed-loop tests and bench (``tests/harness/closed_loop.py``).

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

from db.canary_reads import labelled_shares
from db.outbox import AlertEventRow, AlertOutbox
from db.registry import ModelVersionRow, RegistryRepository
from db.rollouts import RolloutAnalysisRow, RolloutPhaseRow, RolloutRepository, RolloutRow
from db.runs import RetrainRunRow, RunRepository, ValidationResultRow
from db.session import transaction
from db.triggers import DecisionRepository, TriggerDecisionRow
from drift.performance import ClassificationSketch, PerformanceSketch
from service.dev.errors import LoopError
from service.dev.served_feed import Feed

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


@dataclass
class Stored:
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


def follow(
    sessions: sessionmaker[Session], feed: Feed, roll_out: bool
) -> tuple[float | None, int, int]:
    """Wait for the run's verdict, its rollout's end and, once promoted, the labelled
    pairs of :data:`AFTER_WINDOWS` windows after the promotion; their accuracy."""
    run = wait(sessions, feed, 480, "a retraining run's verdict", _verdict)
    if not roll_out or run.verdict != "accepted":
        return None, 0, 0
    rollout = wait(sessions, feed, 480, "the rollout's end (or a pause)", _rollout_over)
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

    pairs, correct = wait(sessions, feed, 240, f"the {AFTER_WINDOWS} windows' labels", complete)
    return correct / pairs, pairs, AFTER_WINDOWS


def _verdict(s: Session) -> RetrainRunRow | None:
    runs = RunRepository(s).runs("fraud")
    return runs[0] if runs and not runs[0].active else None


def _rollout_over(s: Session) -> RolloutRow | None:
    rollouts = RolloutRepository(s).rollouts("fraud")
    if rollouts and (not rollouts[0].active or rollouts[0].phase == "paused"):
        return rollouts[0]
    return None


def wait(
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
    raise LoopError(f"no {what} in {timeout:.0f} s")


def read_stored(sessions: sessionmaker[Session]) -> Stored:
    with transaction(sessions) as s:
        runs = RunRepository(s).runs("fraud")
        registry = RegistryRepository(s)
        version = runs[0].candidate_version_id if runs else None
        row = registry.by_id(version) if version is not None else None
        rollouts = RolloutRepository(s).rollouts("fraud")
        rollout = rollouts[0] if rollouts else None
        return Stored(
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
