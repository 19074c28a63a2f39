"""Live traffic for canary rollouts: prediction and label events stamped with the version
that served them, in the shares the router's split gives, through a real broker.

A test reads the split a router applied (the file, the cluster objects, a manual
router's instruction), hands each model's shares to :meth:`Traffic.window`, and the
window's events go to Kafka: every request of the window is served by one version,
chosen in proportion to the shares (exact counts, largest remainder, spread evenly
over the window), and its label follows. What each version predicts and how often it
is right is a :class:`Behaviour`, fixed per version, so a canary's statistics are
what the test says by construction: its scores cycle through a fixed list (the
histogram of any whole number of cycles is exact) and ``correct_in_ten`` of every ten
consecutive predictions get their predicted class as label.

Event time is the test's: window ``[start, start + window)`` holds its events at even
steps, and :func:`wait_stored` waits until ingestion has stored every one of them, and
every label, before the test moves its clock on. Nothing depends on how fast anything
runs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import PerformanceAggregate, WindowAggregate
from tests.harness.k8s.cluster import until
from tests.harness.kafka import TestKafka

# The prediction bins of the models these events are for.
PREDICTION_BINS = [0.0, 0.25, 0.5, 0.75, 1.0]


@dataclass(frozen=True)
class Behaviour:
    """What a version predicts (scores, cycled) and how often it is right."""

    scores: tuple[float, ...]
    correct_in_ten: int


# Stable, and a healthy canary: one score in each prediction bin, 90% right.
AS_STABLE = Behaviour((0.1, 0.4, 0.6, 0.9), 9)
# Predictions moved up: half the bins stable uses are empty (Jensen-Shannon 0.56).
SHIFTED = Behaviour((0.55, 0.65, 0.8, 0.95), 9)
# The same predictions, right half the time.
WORSE = Behaviour(AS_STABLE.scores, 5)


@dataclass
class Lane:
    """One model's stream: its versions' behaviours and its requests per window."""

    model: str
    behaviours: Mapping[str, Behaviour]
    per_window: int
    served: Counter[str] = field(default_factory=Counter)  # requests per version so far


def allocate(total: int, shares: Mapping[str, int]) -> dict[str, int]:
    """``total`` requests over the versions in proportion to ``shares`` (largest
    remainder, ties to the version named first)."""
    weight = sum(shares.values())
    if weight <= 0:
        raise ValueError(f"no version serves: {dict(shares)}")
    exact = {v: total * w / weight for v, w in shares.items()}
    counts = {v: int(x) for v, x in exact.items()}
    by_remainder = sorted(shares, key=lambda v: counts[v] - exact[v])
    for v in by_remainder[: total - sum(counts.values())]:
        counts[v] += 1
    return counts


def interleave(counts: Mapping[str, int]) -> list[str]:
    """The versions of a window's requests in order, each version's spread evenly."""
    slots = [((k + 0.5) / n, v) for v, n in counts.items() for k in range(n)]
    return [v for _, v in sorted(slots)]


class Traffic:
    """Produces the windows of some models to a predictions and a labels topic."""

    def __init__(self, kafka: TestKafka, topic: str, window: timedelta) -> None:
        self.topic, self.labels = topic, f"{topic}-labels"
        self.window = window
        self.producer = kafka.producer(linger_ms=20, batch_size=1 << 18)

    def close(self) -> None:
        self.producer.close()

    def window_of(
        self, start: datetime, lanes: Sequence[tuple[Lane, Mapping[str, int]]]
    ) -> dict[str, Counter[str]]:
        """Each lane's requests of the window at ``start`` under its shares, produced
        (predictions, then labels); the requests per model and version."""
        labels: list[tuple[bytes, bytes]] = []
        sent: dict[str, Counter[str]] = {}
        for lane, shares in lanes:
            order = interleave(allocate(lane.per_window, shares))
            step = self.window / len(order)
            for i, version in enumerate(order):
                at = start + step * (i + 0.5)
                key, prediction, label = self._request(lane, version, at)
                self.producer.send(self.topic, key=key, value=prediction)
                labels.append((key, label))
            sent[lane.model] = Counter(order)
        for key, label in labels:
            self.producer.send(self.labels, key=key, value=label)
        self.producer.flush()
        return sent

    @staticmethod
    def _request(lane: Lane, version: str, at: datetime) -> tuple[bytes, bytes, bytes]:
        j = lane.served[version]
        lane.served[version] += 1
        behaviour = lane.behaviours[version]
        score = behaviour.scores[j % len(behaviour.scores)]
        predicted = int(score >= 0.5)
        label = predicted if j % 10 < behaviour.correct_in_ten else 1 - predicted
        eid = f"{lane.model}-{version}-{j}"
        stamp = at.astimezone(UTC).isoformat()
        prediction = {
            "event_id": eid,
            "model": lane.model,
            "model_version": version,
            "timestamp": stamp,
            "features": {"amount": float(j % 50)},
            "prediction": score,
        }
        labelled = {"event_id": eid, "model": lane.model, "label": label, "timestamp": stamp}
        return eid.encode(), json.dumps(prediction).encode(), json.dumps(labelled).encode()


def stored(sessions: sessionmaker[Session], start: datetime) -> dict[str, tuple[int, int]]:
    """(events, labelled pairs) per model in the window at ``start``, over versions and
    partitions, as ingestion stored them."""
    out: dict[str, tuple[int, int]] = {}
    with sessions() as s:
        wa, pa = WindowAggregate, PerformanceAggregate
        events = s.execute(
            select(wa.model, func.sum(wa.event_count))
            .where(wa.window_start == start)
            .group_by(wa.model)
        ).all()
        labelled = dict(
            s.execute(
                select(pa.model, func.sum(pa.labeled))
                .where(pa.window_start == start)
                .group_by(pa.model)
            ).all()
        )
    for model, n in events:
        out[model] = (int(n), int(labelled.get(model) or 0))
    return out


def wait_stored(
    sessions: sessionmaker[Session], start: datetime, sent: Mapping[str, Counter[str]]
) -> None:
    """Until every event of the window at ``start`` and every label of them is stored."""
    want = {model: (n, n) for model, n in ((m, sum(c.values())) for m, c in sent.items())}

    def done() -> bool:
        have = stored(sessions, start)
        return all(have.get(model) == n for model, n in want.items())

    until(done, limit=120.0)
