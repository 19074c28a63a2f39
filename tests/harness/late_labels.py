"""Predictions whose labels come within the horizon, later than it, or never; what SQL holds.

Shared by the late-label integration tests and ``bench/label_delay.py``. Event
time is made, not waited for: predictions are stamped ``rate`` per second of
event time from ``start``, a timely label ``U(0, horizon / 2)`` after its
prediction, a late one ``late_delay`` after it (a day in the bench). Labels go
out in the order of their predictions, so no label meets a prediction the
label watermark has already swept (the premise of the exact counts).

``pushers`` move every partition's watermarks past a point: a prediction and a
label per partition, with event ids of their own, in windows of their own.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import func, select

from consumers.synthetic import SyntheticStream
from db.models import PendingLabel, PendingPrediction, PerformanceAggregate, PerformanceReportRow
from db.session import make_engine, make_session_factory

# (version, window start) -> count
Windows = Counter[tuple[str, int]]
PUSHER = "pusher-"


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class DelayedSend:
    """What was produced, per window of the predictions."""

    predicted: Windows = field(default_factory=Counter)
    timely: Windows = field(default_factory=Counter)
    late: Windows = field(default_factory=Counter)
    late_labels: list[tuple[bytes, bytes]] = field(default_factory=list)
    last_time: float = 0.0

    @property
    def labeled(self) -> Windows:
        return self.timely + self.late


def produce_delayed(
    producer: Any,
    stream: SyntheticStream,
    count: int,
    topics: tuple[str, str],
    *,
    horizon: float,
    late_delay: float,
    timely_share: float = 0.5,
    late_share: float = 0.3,
    seed: int = 0,
) -> DelayedSend:
    """Send ``count`` predictions and their timely labels; keep the late labels back
    (in ``late_labels``, for :func:`send_late`)."""
    predictions, labels = topics
    rng = random.Random(seed)
    plan = stream.plan
    sent = DelayedSend()
    futures: list[Any] = []
    for i in range(count):
        t = plan.start + i / plan.rate
        ev = stream.event(i, t)
        futures.append(producer.send(predictions, key=ev.key, value=ev.prediction))
        start = plan.model.window_start(t)
        sent.predicted[(plan.model_version, start)] += 1
        sent.last_time = t
        draw = rng.random()
        if draw >= timely_share + late_share:
            continue
        body = msgspec.json.decode(ev.label)
        if draw < timely_share:
            body["timestamp"] = _stamp(t + rng.uniform(0.0, horizon / 2))
            futures.append(producer.send(labels, key=ev.key, value=msgspec.json.encode(body)))
            sent.timely[(plan.model_version, start)] += 1
        else:
            body["timestamp"] = _stamp(t + late_delay)
            sent.late_labels.append((ev.key, msgspec.json.encode(body)))
            sent.late[(plan.model_version, start)] += 1
        if len(futures) >= 10_000:
            _confirm(producer, futures)
    _confirm(producer, futures)
    return sent


def send_late(producer: Any, topic: str, sent: DelayedSend) -> None:
    futures = [producer.send(topic, key=k, value=v) for k, v in sent.late_labels]
    _confirm(producer, futures)


def push(
    producer: Any,
    topics: tuple[str, str],
    stream: SyntheticStream,
    at: float,
    partitions: int,
    tag: str,
) -> None:
    """Move every partition's prediction and label watermarks to ``at``."""
    predictions, labels = topics
    futures = []
    for p in range(partitions):
        ev = stream.event(0, at)
        eid = f"{PUSHER}{tag}-{p}"
        prediction = {**msgspec.json.decode(ev.prediction), "event_id": eid}
        label = {**msgspec.json.decode(ev.label), "event_id": f"{eid}-label"}
        for topic, body in ((predictions, prediction), (labels, label)):
            futures.append(producer.send(topic, value=msgspec.json.encode(body), partition=p))
    _confirm(producer, futures)


def _confirm(producer: Any, futures: list[Any]) -> None:
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    futures.clear()


@dataclass(frozen=True)
class Stored:
    """What SQL holds of one model: per window (summed over partitions), and pending rows."""

    predicted: Windows
    labeled: Windows
    unlabeled: Windows
    revisions: dict[tuple[str, int], int]
    reported_labeled: Windows
    pending_predictions: int
    pending_main: int  # pending predictions of the stream itself (not the pushers)
    pending_labels: int
    parked_main: int  # parked labels of the stream itself (not the pushers')


def stored(database_url: str, model: str) -> Stored:
    engine = make_engine(database_url)
    pa, r, pp = PerformanceAggregate, PerformanceReportRow, PendingPrediction
    predicted: Windows = Counter()
    labeled: Windows = Counter()
    unlabeled: Windows = Counter()
    reported: Windows = Counter()
    try:
        with make_session_factory(engine)() as s:
            rows = s.execute(
                select(pa.model_version, pa.window_start, pa.predicted, pa.labeled, pa.unlabeled)
                .where(pa.model == model)
            )  # fmt: skip
            for version, start, n, lab, unl in rows:
                key = (version, int(start.timestamp()))
                predicted[key] += n
                labeled[key] += lab
                unlabeled[key] += unl
            revisions = {}
            for version, start, rev, lab in s.execute(
                select(r.model_version, r.window_start, r.revision, r.labeled).where(
                    r.model == model
                )
            ):
                revisions[(version, int(start.timestamp()))] = int(rev)
                reported[(version, int(start.timestamp()))] = int(lab)
            pending = int(s.scalar(select(func.count()).select_from(pp)) or 0)
            main = int(
                s.scalar(select(func.count()).where(pp.event_id.not_like(f"{PUSHER}%"))) or 0
            )
            pl = PendingLabel
            parked = int(s.scalar(select(func.count()).select_from(pl)) or 0)
            parked_main = int(
                s.scalar(select(func.count()).where(pl.event_id.not_like(f"{PUSHER}%"))) or 0
            )
    finally:
        engine.dispose()
    return Stored(
        predicted, labeled, unlabeled, revisions, reported, pending, main, parked, parked_main
    )


def pending_predictions(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as s:
            return int(s.scalar(select(func.count()).select_from(PendingPrediction)) or 0)
    finally:
        engine.dispose()
