"""The stall watch: when a consumer counts as stalled, its alert, and /readyz."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from consumers.progress import ConsumerProgress, OwnedPartition
from db.errors import StoreError
from db.outbox import AlertOutbox
from db.session import make_engine, make_session_factory
from service.alerts.replica import CONSUMER_STALLED, SERVICE_MODEL, ReplicaCondition
from service.monitoring.stalls import StallDetector, StallWatch

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LIMIT = 300.0


class Rig:
    """A fake progress source and one clock, stepped by hand."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.seconds = 0.0
        self.progress = ConsumerProgress()
        self.asks: list[tuple[float, str]] = []  # (when, why) the loop was asked to recycle
        self.accept = True  # what the loop answers
        self.ends: dict[tuple[str, int], int] = {}  # the broker's, where it answers
        self.watch = self.new_watch()

    def new_watch(self) -> StallWatch:
        """A watch as a (re)started replica builds it."""
        condition = ReplicaCondition(self.sessions, CONSUMER_STALLED, "dw", self.now)
        detector = StallDetector(LIMIT, lambda: self.seconds)
        return StallWatch(lambda: self.progress, detector, condition, self.recycle, self.end_of)

    def end_of(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {key: end for key, end in self.ends.items() if key in partitions}

    def recycle(self, reason: str) -> bool:
        self.asks.append((self.seconds, reason))
        return self.accept

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)

    def owns(self, *parts: tuple[str, int, int | None, int | None, int | None]) -> None:
        self.progress = ConsumerProgress(owned=tuple(OwnedPartition(*p) for p in parts))

    def at(self, seconds: float) -> list[str]:
        self.seconds = seconds
        return self.watch.tick()

    def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self.sessions() as s:
            return [(e.model, e.kind, json.loads(e.payload)) for e in AlertOutbox(s).events()]


def stalled(sessions: sessionmaker[Session]) -> Rig:
    """A rig whose one partition, predictions:0, has stood behind for the limit."""
    rig = Rig(sessions)
    rig.owns(("predictions", 0, 1, 2, 3))
    rig.at(0)
    rig.at(LIMIT)
    return rig


def test_a_caught_up_consumer_never_stalls() -> None:
    t = [0.0]
    d = StallDetector(LIMIT, lambda: t[0])
    idle = ConsumerProgress(owned=(OwnedPartition("p", 0, 50, 50, 50),))
    for t[0] in (0.0, 1000.0, 5000.0):
        assert d.observe(idle) is None
    assert d.healthy == {("p", 0)}


def test_a_slow_consumer_that_keeps_flushing_never_stalls() -> None:
    t = 0.0
    d = StallDetector(LIMIT, lambda: t)
    for step in range(20):
        t = step * 100.0
        busy = ConsumerProgress(owned=(OwnedPartition("p", 0, 10 * step, 10 * step + 5, 1000),))
        assert d.observe(busy) is None


def test_events_waiting_behind_an_unmoving_offset_stall_after_the_limit() -> None:
    t = 0.0
    d = StallDetector(LIMIT, lambda: t)
    stuck = ConsumerProgress(
        owned=(OwnedPartition("p", 0, 10, 30, 40), OwnedPartition("p", 1, 7, 7, 7))
    )
    assert d.observe(stuck) is None
    t = LIMIT - 1
    assert d.observe(stuck) is None
    t = LIMIT
    stall = d.observe(stuck)
    assert stall is not None
    assert (list(stall.partitions), stall.seconds, stall.partitions[("p", 0)].lag) == (
        [("p", 0)],
        LIMIT,
        30,
    )
    assert d.healthy == {("p", 1)}
    moved = ConsumerProgress(owned=(OwnedPartition("p", 0, 30, 30, 40),))
    t = LIMIT + 5
    assert d.observe(moved) is None and d.healthy == {("p", 0)}


def test_predictions_held_back_for_their_labels_do_not_stall() -> None:
    t = [0.0]
    d = StallDetector(LIMIT, lambda: t[0])
    held = OwnedPartition("p", 0, 10, 10, 1000, held=True)  # behind, unmoving, on purpose
    labels = [OwnedPartition("l", 0, 100 * i, 100 * i, 10_000) for i in range(4)]
    for i, t[0] in enumerate((0.0, LIMIT, 2 * LIMIT, 3 * LIMIT)):
        assert d.observe(ConsumerProgress(owned=(held, labels[i]))) is None
    # Released and still standing still, it counts from then on.
    released = OwnedPartition("p", 0, 10, 10, 1000)
    assert d.observe(ConsumerProgress(owned=(released,))) is None
    t[0] += LIMIT
    stall = d.observe(ConsumerProgress(owned=(released,)))
    assert stall is not None and set(stall.partitions) == {("p", 0)}


def test_unflushed_reads_of_a_partition_sql_never_held_count_as_waiting() -> None:
    t = 0.0
    d = StallDetector(LIMIT, lambda: t)
    never_flushed = ConsumerProgress(owned=(OwnedPartition("p", 0, None, 20, 20),))
    d.observe(never_flushed)
    t = LIMIT
    assert d.observe(never_flushed) is not None
    # Assigned, nothing read, nothing stored, end unknown: nothing tells of a stall.
    unknown = ConsumerProgress(owned=(OwnedPartition("p", 0, None, None, None),))
    assert d.observe(unknown) is None


def test_a_stall_fires_once_with_its_measures_and_resolves_once(
    sessions: sessionmaker[Session],
) -> None:
    rig = Rig(sessions)
    rig.owns(("predictions", 0, 100, 180, 250), ("predictions", 1, 40, 40, 40))
    assert rig.at(0) == [] and rig.watch.problem() is None
    assert rig.at(LIMIT - 1) == []
    assert len(rig.at(LIMIT + 20)) == 1
    assert rig.at(LIMIT + 40) == []  # still stalled: nothing more
    [(model, kind, payload)] = rig.events()
    assert (model, kind) == (SERVICE_MODEL, CONSUMER_STALLED)
    assert payload == {
        "action": "trigger",
        "scope": "dw/predictions:0",
        "group": "dw",
        "partitions": {"predictions": [0]},
        "stalled_seconds": LIMIT + 20,
        "stalled_after": LIMIT,
        "lag": {"predictions:0": 150},
        "committed": {"predictions:0": 100},
    }
    problem = rig.watch.problem()
    assert problem is not None and "predictions:0 made no progress for 340 s" in problem
    rig.owns(("predictions", 0, 250, 250, 250), ("predictions", 1, 40, 40, 40))
    assert len(rig.at(LIMIT + 60)) == 1
    assert rig.at(LIMIT + 80) == []
    assert [p["action"] for _, _, p in rig.events()] == ["trigger", "resolve"]
    assert rig.events()[1][2] == {
        "action": "resolve",
        "scope": "dw/predictions:0",
        "group": "dw",
        "partitions": {"predictions": [0]},
        "stalled_after": LIMIT,
    }
    assert rig.watch.problem() is None


def test_a_second_partition_stalling_is_the_same_page(sessions: sessionmaker[Session]) -> None:
    rig = Rig(sessions)
    rig.owns(("predictions", 0, 1, 2, 3), ("predictions", 1, 0, 0, 0))
    rig.at(0)
    assert len(rig.at(LIMIT)) == 1
    rig.owns(("predictions", 0, 1, 2, 3), ("predictions", 1, 0, 0, 9))
    rig.at(LIMIT + 1)
    assert rig.at(2 * LIMIT + 1) == []  # both stalled now: still the page that fired
    assert [p["action"] for _, _, p in rig.events()] == ["trigger"]


def test_a_restarted_replica_resolves_the_stall_its_predecessor_left_firing(
    sessions: sessionmaker[Session],
) -> None:
    rig = stalled(sessions)
    rig.watch = rig.new_watch()  # SIGKILL and restart: the firing state is gone
    rig.progress = ConsumerProgress()
    assert rig.at(LIMIT + 10) == []  # not assigned yet: nothing known
    rig.owns(("predictions", 0, 3, 3, 3))
    assert len(rig.at(LIMIT + 20)) == 1
    assert rig.at(LIMIT + 30) == []
    actions = [(p["action"], p["scope"]) for _, _, p in rig.events()]
    assert actions == [("trigger", "dw/predictions:0"), ("resolve", "dw/predictions:0")]
    assert rig.events()[1][2]["resolved_by_successor"] is True


def test_another_replicas_stall_is_left_alone(sessions: sessionmaker[Session]) -> None:
    rig = stalled(sessions)
    other = rig.new_watch()
    rig.watch, mine = other, rig.watch
    rig.owns(("predictions", 1, 5, 5, 5))  # the other replica holds partition 1, healthy
    assert rig.at(LIMIT + 10) == []
    assert [p["action"] for _, _, p in rig.events()] == ["trigger"]
    assert mine.detector.stall is not None


def test_a_stall_that_ends_while_the_outbox_is_unreachable_is_told_after_the_fact(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    rig = Rig(sessions)
    down = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}"))
    condition = ReplicaCondition(down, CONSUMER_STALLED, "dw", rig.now)
    rig.watch = StallWatch(
        lambda: rig.progress, StallDetector(LIMIT, lambda: rig.seconds), condition
    )
    rig.owns(("predictions", 0, 1, 2, 3))
    for seconds in (0.0, LIMIT):  # the database is down: the stall cannot be queued
        with pytest.raises(StoreError):
            rig.at(seconds)
    assert rig.watch.problem() is not None  # /readyz knows all the same
    condition._sessions = sessions  # the database is back, and the flush went through
    rig.owns(("predictions", 0, 3, 3, 3))
    assert len(rig.at(LIMIT + 10)) == 2
    actions = [(p["action"], p.get("stalled_seconds")) for _, _, p in rig.events()]
    assert actions == [("trigger", LIMIT), ("resolve", None)]
    assert rig.at(LIMIT + 20) == []


def test_a_stall_asks_for_a_new_consumer_once_per_limit_and_again_after_a_refusal(
    sessions: sessionmaker[Session],
) -> None:
    rig = Rig(sessions)
    rig.owns(("predictions", 0, 1, 2, 3))
    rig.at(0)
    rig.at(LIMIT - 1)
    assert rig.asks == []
    rig.accept = False  # the database is down: refused, so asked at every tick
    rig.at(LIMIT)
    rig.at(LIMIT + 10)
    rig.accept = True
    rig.at(LIMIT + 20)
    rig.at(LIMIT + 30)
    rig.at(2 * LIMIT + 19)
    assert [when for when, _ in rig.asks] == [LIMIT, LIMIT + 10, LIMIT + 20]
    assert "predictions:0 made no progress for 320 s" in rig.asks[-1][1]
    rig.at(2 * LIMIT + 20)  # stalled a limit longer since the taken ask: once more
    assert [when for when, _ in rig.asks][-1] == 2 * LIMIT + 20
    rig.owns(("predictions", 0, 3, 3, 3))
    rig.at(2 * LIMIT + 30)
    rig.owns(("predictions", 0, 3, 4, 5))  # a new stall starts from nothing
    rig.at(2 * LIMIT + 40)
    rig.at(3 * LIMIT + 40)
    assert [when for when, _ in rig.asks][-2:] == [2 * LIMIT + 20, 3 * LIMIT + 40]


def test_the_stall_stays_open_across_the_consumer_swap_until_the_partition_moves(
    sessions: sessionmaker[Session],
) -> None:
    rig = stalled(sessions)
    assert len(rig.events()) == 1 and len(rig.asks) == 1
    # The old client is revoked and closed; the new one is not assigned yet.
    rig.progress = ConsumerProgress(frozenset({0}), assigned=False)
    assert rig.at(LIMIT + 10) == [] and rig.watch.problem() is not None
    # Assigned again, the partition has not moved yet: the same stall, its clock running.
    rig.progress = ConsumerProgress(
        owned=(OwnedPartition("predictions", 0, 1, 1, 3),), assigned=True
    )
    assert rig.at(LIMIT + 20) == []
    stall = rig.watch.detector.stall
    assert stall is not None and stall.seconds == LIMIT + 20
    rig.owns(("predictions", 0, 3, 3, 3))
    assert len(rig.at(LIMIT + 30)) == 1
    assert [p["action"] for _, _, p in rig.events()] == ["trigger", "resolve"]
    assert len(rig.asks) == 1


def test_a_replica_assigned_nothing_after_a_rebalance_resolves_its_stall(
    sessions: sessionmaker[Session],
) -> None:
    rig = stalled(sessions)
    rig.progress = ConsumerProgress(frozenset({0}), assigned=True)  # another replica has it
    assert len(rig.at(LIMIT + 10)) == 1
    assert [p["action"] for _, _, p in rig.events()] == ["trigger", "resolve"]


def test_a_consumer_that_stopped_fetching_stalls_by_the_brokers_end_offsets(
    sessions: sessionmaker[Session],
) -> None:
    rig = Rig(sessions)
    # By its own account caught up: the high watermark of its last fetch is 40.
    rig.owns(("predictions", 0, 40, 40, 40), ("predictions", 1, 7, 7, 7))
    rig.ends = {("predictions", 0): 90}  # the broker has 50 more; partition 1 not told
    rig.at(0)
    assert len(rig.at(LIMIT)) == 1
    [(_, _, payload)] = rig.events()
    assert payload["lag"] == {"predictions:0": 50}
    assert len(rig.asks) == 1
    rig.ends = {}  # the broker does not answer: the consumer's own account
    assert len(rig.at(LIMIT + 10)) == 1  # caught up by that: resolved
    # The broker's end below the consumer's (a lagging replica answered) changes nothing.
    rig.ends = {("predictions", 0): 10}
    assert rig.at(2 * LIMIT + 20) == []
