"""Predictions with delayed, duplicated and missing labels, and the join checked in SQL.

Shared by the label chaos test and ``bench/chaos_ingest.py``. Labels get an
event time 0-10 minutes after their prediction's; some are sent twice (same
value), some never. Both topics are keyed by event_id. The expected result is
computed offline from what the producer had acknowledged: per window of the
prediction, the confusion cells (actual, predicted) of the labelled events.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select

from consumers.synthetic import SyntheticStream
from db.models import PerformanceAggregate
from db.session import make_engine, make_session_factory
from drift.performance import ClassificationSketch, PerformanceSketch

# (model, version, window start, actual, predicted)
Cell = tuple[str, str, int, str, str]


@dataclass
class LabeledSend:
    windows: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    cells: Counter[Cell] = field(default_factory=Counter)
    labels_sent: int = 0

    @property
    def labeled(self) -> int:
        return sum(self.cells.values())


def produce_labeled(
    producer: Any,
    streams: list[SyntheticStream],
    count: int,
    predictions_topic: str,
    labels_topic: str,
    *,
    seed: int = 0,
    label_share: float = 0.9,
    duplicate_share: float = 0.02,
    max_delay: float = 600.0,
) -> LabeledSend:
    """Send ``count`` predictions per stream and labels for about ``label_share`` of them.

    Labels go out shuffled within blocks of 2,000, so many arrive before their
    prediction has been read. The predicted class of a numerical score is "1"
    from 0.5 on, as ``models.*.labels.threshold`` defaults.
    """
    rng = random.Random(seed)
    sent = LabeledSend()
    futures: list[Any] = []
    pending_labels: list[tuple[bytes, bytes]] = []
    for i in range(count):
        for stream in streams:
            plan = stream.plan
            ev = stream.event(i, plan.start + i / plan.rate)
            futures.append(producer.send(predictions_topic, key=ev.key, value=ev.prediction))
            spec = plan.model
            start = spec.window_start(ev.event_time)
            sent.windows[(spec.name, plan.model_version, start)] += 1
            if rng.random() >= label_share:
                continue
            body = msgspec.json.decode(ev.label)
            score = float(msgspec.json.decode(ev.prediction)["prediction"])
            delay = rng.uniform(0.0, max_delay)
            body["timestamp"] = (
                datetime.fromtimestamp(ev.event_time + delay, UTC)
                .isoformat()
                .replace("+00:00", "Z")
            )
            value = msgspec.json.encode(body)
            copies = 2 if rng.random() < duplicate_share else 1
            pending_labels.extend([(ev.key, value)] * copies)
            predicted = "1" if score >= 0.5 else "0"
            sent.cells[(spec.name, plan.model_version, start, str(body["label"]), predicted)] += 1
        if len(pending_labels) >= 2000:
            _send_shuffled(producer, labels_topic, pending_labels, rng, futures, sent)
        if len(futures) >= 10_000:
            _confirm(producer, futures)
    _send_shuffled(producer, labels_topic, pending_labels, rng, futures, sent)
    _confirm(producer, futures)
    return sent


def _send_shuffled(
    producer: Any,
    topic: str,
    labels: list[tuple[bytes, bytes]],
    rng: random.Random,
    futures: list[Any],
    sent: LabeledSend,
) -> None:
    rng.shuffle(labels)
    for key, value in labels:
        futures.append(producer.send(topic, key=key, value=value))
    sent.labels_sent += len(labels)
    labels.clear()


def _confirm(producer: Any, futures: list[Any]) -> None:
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    futures.clear()


def stored_cells(database_url: str) -> Counter[Cell]:
    """The confusion cells in SQL per window of the prediction, over partitions."""
    engine = make_engine(database_url)
    pa = PerformanceAggregate
    cells: Counter[Cell] = Counter()
    try:
        with make_session_factory(engine)() as session:
            rows = session.execute(select(pa.model, pa.model_version, pa.window_start, pa.sketch))
            for model, version, start, raw in rows:
                sketch = PerformanceSketch.from_bytes(raw).sketch
                assert isinstance(sketch, ClassificationSketch)
                for (actual, predicted), n in sketch.confusion.items():
                    cells[(model, version, int(start.timestamp()), actual, predicted)] += n
    finally:
        engine.dispose()
    return cells
