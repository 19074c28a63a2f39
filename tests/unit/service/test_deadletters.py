"""The dead-letter rate: its rolling count, what the ingest stats feed it, and its alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from consumers.progress import ConsumerProgress, OwnedPartition
from db.outbox import AlertOutbox
from service.alerts.replica import DEAD_LETTER_RATE, SERVICE_MODEL, ReplicaCondition
from service.metric_feeds import IngestMetrics
from service.metrics import Metrics
from service.monitoring.deadletters import Counts, DeadLetterRate, EventTally

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WINDOW = 300.0


class Rig:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.seconds = 0.0
        self.tally = EventTally(WINDOW, lambda: self.seconds)
        self.progress = ConsumerProgress(
            owned=(
                OwnedPartition("predictions", 0, 5, 5, 5),
                OwnedPartition("predictions", 1, 0, 0, 0),
            )
        )
        condition = ReplicaCondition(
            sessions, DEAD_LETTER_RATE, "dw", lambda: T0 + timedelta(seconds=self.seconds)
        )
        self.rate = DeadLetterRate(self.tally, 0.05, 100, lambda: self.progress, condition)

    def read(self, seconds: float, events: int, dead: int) -> list[str]:
        self.seconds = seconds
        self.tally.add(events=events, dead=dead)
        return self.rate.tick()

    def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self.sessions() as s:
            return [(e.model, e.kind, json.loads(e.payload)) for e in AlertOutbox(s).events()]


def test_the_tally_forgets_what_left_the_window() -> None:
    t = 0.0
    tally = EventTally(60.0, lambda: t)
    tally.add(events=10, dead=2)
    t = 59.0
    tally.add(events=5)
    assert tally.counts() == Counts(15, 2)
    t = 60.5
    assert tally.counts() == Counts(5, 0)
    t = 200.0
    assert tally.counts() == Counts(0, 0) and tally.counts().ratio == 0.0


def test_the_ingest_stats_count_valid_late_labelled_and_dead_lettered_events() -> None:
    tally = EventTally(60.0, lambda: 0.0)
    stats = IngestMetrics(Metrics(), ["fraud"], tally)
    stats.consumed("fraud", 90)
    stats.late("fraud", 4)
    stats.labels("fraud", "joined", 3)
    stats.labels("fraud", "early", 7)  # reported again once its prediction arrives
    stats.invalid("schema")
    stats.invalid("json")
    assert tally.counts() == Counts(99, 2)


def test_a_high_share_fires_once_with_its_measures_and_resolves_when_it_drops(
    sessions: sessionmaker[Session],
) -> None:
    rig = Rig(sessions)
    assert rig.read(0, 50, 10) == []  # 20 % but only 50 events: not judged
    assert len(rig.read(10, 60, 0)) == 1  # 10 of 110
    assert rig.read(20, 100, 1) == []  # 11 of 210, still over 5 %: already firing
    [(model, kind, payload)] = rig.events()
    assert (model, kind) == (SERVICE_MODEL, DEAD_LETTER_RATE)
    assert payload == {
        "action": "trigger",
        "scope": "dw/predictions:0-1",
        "group": "dw",
        "partitions": {"predictions": [0, 1]},
        "ratio": round(10 / 110, 6),
        "dead_letters": 10,
        "events": 110,
        "window_seconds": WINDOW,
        "threshold": 0.05,
        "min_events": 100,
    }
    assert len(rig.read(30, 100, 0)) == 1  # 11 of 310: 3.5 %
    assert rig.read(40, 10, 0) == []
    assert [p["action"] for _, _, p in rig.events()] == ["trigger", "resolve"]
    resolve = rig.events()[1][2]
    assert (resolve["scope"], resolve["dead_letters"], resolve["events"]) == (
        "dw/predictions:0-1",
        11,
        310,
    )


def test_too_few_events_to_judge_hold_a_firing_alert_until_the_dead_letters_age_out(
    sessions: sessionmaker[Session],
) -> None:
    rig = Rig(sessions)
    assert len(rig.read(0, 100, 50)) == 1
    assert rig.read(WINDOW + 1, 10, 5) == []  # 5 of 10: too few events to tell either way
    assert len(rig.read(2 * WINDOW + 2, 3, 0)) == 1  # no dead letter left: cleared
    assert [p["action"] for _, _, p in rig.events()] == ["trigger", "resolve"]


def test_exactly_the_ratio_does_not_fire(sessions: sessionmaker[Session]) -> None:
    rig = Rig(sessions)
    assert rig.read(0, 100, 5) == []
    assert rig.events() == []


@pytest.mark.parametrize(("ratio", "min_events"), [(0.0, 100), (1.0, 100), (0.05, 0)])
def test_settings_out_of_range_are_refused(
    sessions: sessionmaker[Session], ratio: float, min_events: int
) -> None:
    condition = ReplicaCondition(sessions, DEAD_LETTER_RATE, "dw", lambda: T0)
    with pytest.raises(ValueError):
        DeadLetterRate(EventTally(1.0, lambda: 0.0), ratio, min_events, ConsumerProgress, condition)
