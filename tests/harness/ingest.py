"""Fakes shared by the tests that drive the ingestion loop step by step.

Kafka and the clock come from :mod:`consumers.fakes` (checked by mypy against
the loop's protocols); here are the pieces only tests need: a checkpoint store
that fails on request, stats that record every call, and a loop over a
predictions and a labels topic for the label join and its detectors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kafka import TopicPartition
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from consumers.checkpoint import CheckpointStore
from consumers.dlq import DeadLetterPublisher
from consumers.events import EventDecoder
from consumers.fakes import FakeClock, FakeConsumer, FakeProducer, FakeRecord
from consumers.labels import LabelSpec
from consumers.loop import IngestLoop, IngestSettings
from consumers.positions import Rebalance
from consumers.stats import IngestStats
from db.errors import StoreUnavailable
from db.join import PerformanceAggregateRepository
from db.models import PendingLabel, PendingPrediction
from drift.performance import ClassificationSketch, Task
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec

__all__ = [
    "DECODER",
    "FRAUD",
    "GROUP",
    "LABELS",
    "SPEC",
    "TOPIC",
    "TTL",
    "FakeClock",
    "FakeConsumer",
    "FakeProducer",
    "FakeRecord",
    "FlakyStore",
    "JoinRig",
    "Stats",
    "T",
    "label",
    "letters",
    "pred",
]
TOPIC, LABELS, GROUP = "predictions", "labels", "g1"
T = 1_800_000_000  # a multiple of 60: windows line up at T
FRAUD = ModelSpec(
    "fraud",
    (FeatureSpec("amount", FeatureKind.NUMERICAL, edges=(0.0, 10.0, 100.0)),),
    PredictionSpec(PredictionKind.NUMERICAL, (0.0, 0.5, 1.0)),
    window_seconds=60,
    allowed_lateness_seconds=10,
)
DECODER = EventDecoder({"fraud": FRAUD})
TTL = 600.0
SPEC = LabelSpec("fraud", PredictionKind.NUMERICAL, Task.CLASSIFICATION, TTL)


class FlakyStore(CheckpointStore):
    """The real store, told to fail the next commits/loads or to lose acknowledgements."""

    def __init__(self, sessions: sessionmaker[Session], group: str, clock: FakeClock) -> None:
        super().__init__(sessions, group, clock.time)
        self.fail_commits = self.fail_loads = self.lose_acks = self.commit_calls = 0

    def commit(self, advances: Any, deltas: Any, *join: Any, **options: Any) -> Any:
        self.commit_calls += 1
        if self.fail_commits:
            self.fail_commits -= 1
            raise StoreUnavailable("database down")
        counts = super().commit(advances, deltas, *join, **options)
        if self.lose_acks:
            self.lose_acks -= 1
            raise StoreUnavailable("connection lost before the commit was acknowledged")
        return counts

    def load(self, topic: str, partitions: Any) -> Any:
        if self.fail_loads:
            self.fail_loads -= 1
            raise StoreUnavailable("database down")
        return super().load(topic, partitions)


def _recorder(name: str) -> Any:
    def record(self: Stats, *args: Any) -> None:
        self.calls.append((name, args))

    return record


class Stats:
    """Implements consumers.stats.IngestStats by recording every call as (method, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def of(self, name: str) -> list[Any]:
        return [args[0] if len(args) == 1 else args for n, args in self.calls if n == name]


for _name in [name for name in vars(IngestStats) if not name.startswith("_")]:
    setattr(Stats, _name, _recorder(_name))


def letters(producer: FakeProducer) -> list[dict[str, Any]]:
    """The dead-letter envelopes a fake producer was given, decoded."""
    return [json.loads(value) for value in producer.values()]


def pred(t: float, eid: str, score: float = 0.25) -> bytes:
    return json.dumps(
        {
            "event_id": eid,
            "model": "fraud",
            "model_version": "v1",
            "timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
            "features": {"amount": 1.0},
            "prediction": score,
        }
    ).encode()


def label(t: float, eid: str, value: Any, model: str = "fraud") -> bytes:
    ts = datetime.fromtimestamp(t, UTC).isoformat()
    return json.dumps({"event_id": eid, "model": model, "label": value, "timestamp": ts}).encode()


class JoinRig:
    """The loop over a predictions and a labels topic, joining model fraud's labels."""

    def __init__(self, sql: sessionmaker[Session], clock: FakeClock, partitions: int = 1) -> None:
        self.sql = sql
        self.consumer = FakeConsumer(
            clock,
            [TopicPartition(t, p) for t in (TOPIC, LABELS) for p in range(partitions)],
            max_records=50,
        )
        self.store = FlakyStore(sql, GROUP, clock)
        self.producer, self.stats = FakeProducer(), Stats()
        self.loop = IngestLoop(
            self.consumer,
            DECODER,
            self.store,
            DeadLetterPublisher(lambda: self.producer, "dead-letters"),
            IngestSettings(TOPIC, labels_topic=LABELS, max_backoff=1.0),
            self.stats,  # type: ignore[arg-type]
            clock=clock,
            label_specs={"fraud": SPEC},
        )
        self.consumer.subscribe([TOPIC, LABELS], listener=Rebalance(self.loop))

    def add_labels(self, partition: int, *values: bytes) -> None:
        self.consumer.append(TopicPartition(LABELS, partition), *values)

    def step(
        self, preds: Sequence[bytes] = (), labels: Sequence[bytes] = (), partition: int = 0
    ) -> None:
        """Append, read everything and flush once."""
        self.consumer.append(TopicPartition(TOPIC, partition), *preds)
        self.add_labels(partition, *labels)
        while batch := self.loop._poll(0):
            self.loop._process(batch)
        assert self.loop._flush_with_retry(deadline=None) is True

    def outcomes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for model, outcome, n in self.stats.of("labels"):
            assert model == "fraud"
            out[outcome] = out.get(outcome, 0) + n
        return out

    def unlabeled(self) -> int:
        return sum(n for _, n in self.stats.of("unlabeled"))

    def window(self, start: int = T) -> tuple[int, int, int, ClassificationSketch]:
        """(predicted, labeled, unlabeled, sketch) of the window starting at ``start``."""
        with self.sql() as s:
            w = PerformanceAggregateRepository(s).window(
                "fraud", "v1", datetime.fromtimestamp(start, UTC), SPEC.layout
            )
        assert w is not None
        assert isinstance(w.sketch.sketch, ClassificationSketch)
        return w.predicted, w.labeled, w.unlabeled, w.sketch.sketch

    def pending(self) -> tuple[int, int, int]:
        """(unlabelled predictions, labelled predictions, parked labels) in SQL."""
        pp = PendingPrediction
        with self.sql() as s:
            unlabeled = s.scalar(select(func.count()).where(pp.labeled_at.is_(None)))
            labeled = s.scalar(select(func.count()).where(pp.labeled_at.is_not(None)))
            parked = s.scalar(select(func.count()).select_from(PendingLabel))
        return int(unlabeled or 0), int(labeled or 0), int(parked or 0)
