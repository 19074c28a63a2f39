"""One rule for when a window is final, for drift and performance, the consumer's progress included.

Every test stands where a restart leaves the service: SQL's watermarks last
moved long ago (every partition idle past ``idle_partition_timeout``), so by
SQL alone every window would count as closed.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from consumers.progress import ConsumerProgress, OwnedPartition
from service.monitoring.evaluation import EvaluationSettings, Judging, WindowEvaluator
from service.monitoring.performance import (
    PerformanceEvaluator,
    PerformanceJudging,
    PerformanceSettings,
)
from service.monitoring.watermarks import Finality
from tests.unit.service import test_evaluation as drift
from tests.unit.service.test_performance import SPEC, T, fill

IDLE = PerformanceSettings("predictions", "labels", "g1", idle_partition_timeout=30.0)
RESTARTED = ConsumerProgress(frozenset({0}))  # metadata known, no assignment yet


def caught_up(topic: str, offset: int, high: int | None = None) -> OwnedPartition:
    return OwnedPartition(topic, 0, offset, offset, offset if high is None else high)


def performance(
    sessions: sessionmaker[Session], progress: ConsumerProgress
) -> PerformanceEvaluator:
    judging = PerformanceJudging(SPEC, 60, 10, None, min_labeled=100)
    finality = Finality(IDLE.idle_partition_timeout, lambda: progress)
    return PerformanceEvaluator(
        sessions, {"fraud": judging}, IDLE, clock=lambda: T + 100.0, finality=finality
    )


def test_after_a_restart_no_performance_window_is_final_until_the_consumer_holds_its_partitions(
    sessions: sessionmaker[Session],
) -> None:
    fill(sessions, correct=150, wrong=50, unlabeled=0)  # 200 predictions, 200 labels stored
    assert performance(sessions, RESTARTED).tick() == []
    assigned_unknown_ends = ConsumerProgress(
        frozenset({0}),
        frozenset({0}),
        (OwnedPartition("predictions", 0, None, None, None),),
        assigned=True,
    )
    assert performance(sessions, assigned_unknown_ends).tick() == []
    both_read = ConsumerProgress(
        frozenset({0}),
        owned=(caught_up("predictions", 200), caught_up("labels", 200)),
        assigned=True,
    )
    assert len(performance(sessions, both_read).tick()) == 1


def test_labels_still_in_the_topic_hold_a_performance_window_open(
    sessions: sessionmaker[Session],
) -> None:
    fill(sessions, correct=150, wrong=50, unlabeled=0)
    labels_pending = ConsumerProgress(
        frozenset({0}),
        owned=(caught_up("predictions", 200), caught_up("labels", 200, high=260)),
        assigned=True,
    )
    assert performance(sessions, labels_pending).tick() == []
    read_not_flushed = ConsumerProgress(
        frozenset({0}),
        owned=(caught_up("predictions", 200), OwnedPartition("labels", 0, 200, 260, 260)),
        assigned=True,
    )
    assert performance(sessions, read_not_flushed).tick() == []


def test_drift_windows_follow_the_same_rule(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    drift.build_profile(sessions, tmp_path)
    drift.ingest(sessions, drift.aligned(sessions), windows=3, drift_at=None)  # partitions 0, 1
    progress = [ConsumerProgress(frozenset({0, 1}))]
    evaluator = WindowEvaluator(
        sessions,
        {"fraud": Judging(spec=drift.SPEC)},
        EvaluationSettings(topic=drift.TOPIC, consumer_group="g", idle_partition_timeout=60),
        clock=drift.Clock(drift.T0 + 1000),
        progress=lambda: progress[0],
    )
    assert evaluator.tick() == []  # restarted: every partition idle in SQL, none held yet
    owned = tuple(
        OwnedPartition(drift.TOPIC, p, offset, offset, offset)
        for p, offset in ((0, 2250), (1, 2250))
    )
    progress[0] = ConsumerProgress(frozenset({0, 1}), owned=owned, assigned=True)
    assert len(evaluator.tick()) == 3  # both read to their end: the stream has stopped
