"""WindowAccumulator: event-time windows, lateness and per-partition deltas."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from consumers.events import EventDecoder, PredictionEvent
from consumers.window import FOLD_EVENTS, WindowAccumulator
from db.repositories import WindowKey
from drift.latency_sketch import LatencySketch
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import CategoricalSketch, NumericSketch, WindowBatch, WindowSketch

FRAUD = ModelSpec(
    "fraud",
    (
        FeatureSpec("amount", FeatureKind.NUMERICAL, edges=(0.0, 10.0, 100.0)),
        FeatureSpec("country", FeatureKind.CATEGORICAL, nullable=True),
    ),
    PredictionSpec(PredictionKind.NUMERICAL, (0.0, 0.5, 1.0)),
    window_seconds=60,
    allowed_lateness_seconds=10,
)
CHURN = ModelSpec(
    "churn",
    (FeatureSpec("tenure", FeatureKind.NUMERICAL, edges=(0.0, 12.0)),),
    PredictionSpec(PredictionKind.CATEGORICAL),
    window_seconds=300,
)
DECODER = EventDecoder({"fraud": FRAUD, "churn": CHURN})

# Epoch 1_800_000_000 is a multiple of 60 and 300, so windows line up at T.
T = 1_800_000_000


def ev(
    t: float,
    amount: float = 1.0,
    country: str | None = "de",
    pred: float = 0.25,
    version: str = "v1",
    latency_ms: float | None = None,
) -> PredictionEvent:
    raw: dict[str, object] = {
        "event_id": f"e{t}",
        "model": "fraud",
        "model_version": version,
        "timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
        "features": {"amount": amount, "country": country},
        "prediction": pred,
    }
    if latency_ms is not None:
        raw["latency_ms"] = latency_ms
    return DECODER.decode_prediction(json.dumps(raw).encode())


def churn(t: float, tenure: float, label: str) -> PredictionEvent:
    raw = {
        "event_id": f"c{t}",
        "model": "churn",
        "model_version": "v7",
        "timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
        "features": {"tenure": tenure},
        "prediction": label,
    }
    return DECODER.decode_prediction(json.dumps(raw).encode())


def key(start: int, partition: int = 0, version: str = "v1") -> WindowKey:
    return WindowKey("fraud", version, start, 60, partition, FRAUD.layout)


class LateLog:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, model: str, n: int) -> None:
        self.calls.append((model, n))


def accumulator() -> WindowAccumulator:
    return WindowAccumulator(DECODER.codecs)


def fraud_sketch(*events: PredictionEvent) -> WindowSketch:
    sketch = WindowSketch.empty(FRAUD)
    if events:
        codec = DECODER.codecs["fraud"]
        sketch.update(
            WindowBatch(
                len(events),
                codec.columns([e.features for e in events]),
                [e.prediction for e in events],
            )
        )
    return sketch


def test_events_are_grouped_by_window() -> None:
    acc, late = accumulator(), LateLog()
    events = [ev(T + 1, 5.0), ev(T + 59.9, 50.0), ev(T + 60, 500.0, None, 0.75)]
    wm = acc.add_partition_batch(0, events, None, late)
    assert wm == T + 60
    assert late.calls == []
    assert acc.events == 3
    assert set(acc.deltas) == {key(T), key(T + 60)}
    first, second = acc.deltas[key(T)], acc.deltas[key(T + 60)]
    assert (first.sketch.events, first.late) == (2, 0)
    assert (second.sketch.events, second.late) == (1, 0)
    assert first.sketch == fraud_sketch(events[0], events[1])
    amount = second.sketch.features["amount"]
    assert isinstance(amount, NumericSketch)
    assert amount.hist.tolist() == [0, 0, 0, 1]
    country = second.sketch.features["country"]
    assert isinstance(country, CategoricalSketch)
    assert (country.count, country.nulls) == (0, 1)


def test_watermark_progresses_inside_a_batch() -> None:
    acc, late = accumulator(), LateLog()
    events = [
        ev(T + 5),  # window T, watermark becomes T+5
        ev(T + 130),  # window T+120, watermark T+130
        ev(T + 50),  # window T closes at T+60, late from T+70: late
        ev(T + 125),  # window T+120: on time
        ev(T + 69),  # window T+60 closes at T+120, late from T+130 (== watermark): late
        ev(T + 100),  # same window, also late
    ]
    wm = acc.add_partition_batch(0, events, None, late)
    assert wm == T + 130
    assert {k: (d.sketch.events, d.late) for k, d in acc.deltas.items()} == {
        key(T): (1, 1),
        key(T + 120): (2, 0),
        key(T + 60): (0, 2),
    }
    assert acc.deltas[key(T)].sketch == fraud_sketch(events[0])
    assert acc.deltas[key(T + 60)].sketch == WindowSketch.empty(FRAUD)
    assert acc.events == 3
    assert sorted(late.calls) == [("fraud", 1), ("fraud", 2)]


def test_lateness_boundary_within_a_batch() -> None:
    acc, late = accumulator(), LateLog()
    # Window T ends at T+60; with 10 s lateness an event of it is late once the
    # watermark is T+70, and accepted while the watermark is below that.
    wm = acc.add_partition_batch(0, [ev(T + 69.999), ev(T + 1)], None, late)
    assert wm == T + 69.999
    assert {k: (d.sketch.events, d.late) for k, d in acc.deltas.items()} == {
        key(T + 60): (1, 0),
        key(T): (1, 0),
    }
    wm = acc.add_partition_batch(0, [ev(T + 70), ev(T + 2)], wm, late)
    assert wm == T + 70
    assert {k: (d.sketch.events, d.late) for k, d in acc.deltas.items()} == {
        key(T + 60): (2, 0),
        key(T): (1, 1),
    }
    assert late.calls == [("fraud", 1)]


def test_incoming_watermark_decides_the_first_event() -> None:
    acc, late = accumulator(), LateLog()
    wm = acc.add_partition_batch(3, [ev(T + 10)], T + 500.0, late)
    assert wm == T + 500.0  # a late event never moves the watermark back
    assert acc.deltas == {key(T, 3): acc.deltas[key(T, 3)]}
    assert (acc.deltas[key(T, 3)].sketch.events, acc.deltas[key(T, 3)].late) == (0, 1)
    assert acc.events == 0
    assert late.calls == [("fraud", 1)]


def test_empty_batch_keeps_the_watermark() -> None:
    acc, late = accumulator(), LateLog()
    assert acc.add_partition_batch(0, [], None, late) is None
    assert acc.add_partition_batch(0, [], 12.5, late) == 12.5
    assert acc.deltas == {}
    assert acc.events == 0


def test_partitions_have_their_own_keys_and_watermarks() -> None:
    acc, late = accumulator(), LateLog()
    wm0 = acc.add_partition_batch(0, [ev(T + 1), ev(T + 200)], None, late)
    # Partition 1 is behind: its own watermark (None) makes T+2 on time.
    wm1 = acc.add_partition_batch(1, [ev(T + 2)], None, late)
    assert (wm0, wm1) == (T + 200, T + 2)
    assert {k: d.sketch.events for k, d in acc.deltas.items()} == {
        key(T, 0): 1,
        key(T + 180, 0): 1,
        key(T, 1): 1,
    }
    assert late.calls == []
    assert acc.events == 3


def test_later_batches_merge_into_the_same_delta() -> None:
    acc, late = accumulator(), LateLog()
    a, b = ev(T + 1, 2.0), ev(T + 2, 20.0, "fr", 0.9)
    wm = acc.add_partition_batch(0, [a], None, late)
    acc.add_partition_batch(0, [b], wm, late)
    assert list(acc.deltas) == [key(T)]
    expected = fraud_sketch(a)
    expected.merge(fraud_sketch(b))
    assert acc.deltas[key(T)].sketch == expected
    assert acc.events == 2


def test_events_a_few_at_a_time_make_the_sketch_of_one_batch() -> None:
    """Each row's events are held and folded FOLD_EVENTS at a time, the rest at the
    flush: events arriving one per poll (many models on one stream), crossing the fold
    twice, make the sketch their single batch makes, and the flush threshold counts
    every one before any is folded."""
    sampled = ModelSpec(
        "fraud", FRAUD.features, FRAUD.prediction, window_seconds=60, sample_size=40
    )
    decoder = EventDecoder({"fraud": sampled})
    events = [
        decoder.decode_prediction(json.dumps({
            "event_id": f"e{i}", "model": "fraud", "model_version": "v1",
            "timestamp": datetime.fromtimestamp(T + i / 100, UTC).isoformat(),
            "features": {"amount": float(i % 150), "country": ["de", "fr", None][i % 3]},
            "prediction": (i % 4) / 4,
        }).encode())
        for i in range(2 * FOLD_EVENTS + 3)
    ]  # fmt: skip
    acc, late = WindowAccumulator(decoder.codecs), LateLog()
    wm = None
    for i, event in enumerate(events):
        wm = acc.add_partition_batch(0, [event], wm, late)
        assert acc.events == i + 1
    whole = WindowAccumulator(decoder.codecs)
    whole.add_partition_batch(0, events, None, late)
    assert len(whole.deltas[key(T)].sketch.sample.rows) == 40
    assert acc.deltas[key(T)].sketch == whole.deltas[key(T)].sketch
    assert acc.take()[key(T)].sketch.events == 2 * FOLD_EVENTS + 3
    assert (acc.events, acc.deltas, late.calls) == (0, {}, [])


def test_reading_the_deltas_again_folds_the_held_events_once() -> None:
    """A retried flush reads the deltas a second time: the held events are in them once."""
    acc, late = accumulator(), LateLog()
    wm = acc.add_partition_batch(0, [ev(T + 1, 2.0), ev(T + 2, 20.0)], None, late)
    acc.add_partition_batch(0, [ev(T + 3, 200.0)], wm, late)
    first = acc.deltas[key(T)].sketch.events
    assert (first, acc.deltas[key(T)].sketch.events, acc.events) == (3, 3, 3)
    assert acc.take()[key(T)].sketch == fraud_sketch(
        ev(T + 1, 2.0), ev(T + 2, 20.0), ev(T + 3, 200.0)
    )


def test_models_and_versions_get_separate_keys() -> None:
    acc, late = accumulator(), LateLog()
    events = [ev(T + 1, version="v1"), ev(T + 2, version="v2"), churn(T + 3, 6.0, "stay")]
    acc.add_partition_batch(0, events, None, late)
    assert set(acc.deltas) == {
        key(T, version="v1"),
        key(T, version="v2"),
        WindowKey("churn", "v7", T, 300, 0, CHURN.layout),
    }
    prediction = acc.deltas[WindowKey("churn", "v7", T, 300, 0, CHURN.layout)].sketch.prediction
    assert isinstance(prediction, CategoricalSketch)
    assert prediction.counts == Counter({"stay": 1})


def test_lateness_is_per_model_spec() -> None:
    acc, late = accumulator(), LateLog()
    # The watermark T+300 closes fraud's window T (late from T+70) and churn's
    # window T (300 s, no lateness: late from T+300).
    acc.add_partition_batch(0, [ev(T + 300), ev(T + 10), churn(T + 299, 1.0, "go")], None, late)
    assert acc.deltas[key(T)].late == 1
    assert acc.deltas[WindowKey("churn", "v7", T, 300, 0, CHURN.layout)].late == 1
    assert sorted(late.calls) == [("churn", 1), ("fraud", 1)]


def test_take_returns_everything_and_resets() -> None:
    acc, late = accumulator(), LateLog()
    acc.add_partition_batch(0, [ev(T + 1), ev(T + 61)], None, late)
    before = dict(acc.deltas)
    taken = acc.take()
    assert taken == before
    assert set(taken) == {key(T), key(T + 60)}
    assert acc.deltas == {}
    assert acc.events == 0
    assert acc.take() == {}


def test_drop_partitions_discards_only_those_partitions() -> None:
    acc, late = accumulator(), LateLog()
    acc.add_partition_batch(0, [ev(T + 1), ev(T + 2)], None, late)
    acc.add_partition_batch(1, [ev(T + 3)], None, late)
    acc.add_partition_batch(2, [ev(T + 70), ev(T + 4)], T + 500, late)  # two late ones
    assert acc.events == 3
    acc.drop_partitions({0, 7})
    assert set(acc.deltas) == {key(T, 1), key(T, 2), key(T + 60, 2)}
    assert acc.events == 1
    acc.drop_partitions({1, 2})
    assert acc.deltas == {}
    assert acc.events == 0


def test_drop_no_partitions_keeps_everything() -> None:
    acc, late = accumulator(), LateLog()
    acc.add_partition_batch(0, [ev(T + 1)], None, late)
    acc.drop_partitions(set())
    assert set(acc.deltas) == {key(T)}
    assert acc.events == 1


def test_latencies_are_sketched_per_window_and_version_and_missing_ones_skipped() -> None:
    acc = WindowAccumulator(DECODER.codecs)
    events = [
        ev(T + 1, latency_ms=2.0),
        ev(T + 2),
        ev(T + 3, latency_ms=4.0, version="v2"),
        ev(T + 61, latency_ms=8.0),
        ev(T + 62, latency_ms=0.0),
    ]
    acc.add_partition_batch(0, events, None, on_late=lambda m, n: None)
    deltas = acc.take()
    latency = {(k.model_version, k.window_start - T): d.latency for k, d in deltas.items()}
    assert {k: s.count for k, s in latency.items()} == {("v1", 0): 1, ("v2", 0): 1, ("v1", 60): 2}
    assert latency[("v1", 0)] == LatencySketch.of([2.0])
    assert latency[("v1", 60)] == LatencySketch.of([8.0, 0.0])
    # The event without a latency still counts as an event.
    assert (
        deltas[
            next(k for k in deltas if k.model_version == "v1" and k.window_start == T)
        ].sketch.events
        == 2
    )


def test_late_events_of_windows_past_the_horizon_are_counted_but_keep_no_row() -> None:
    # Events stamped at random old times (a broken producer's, or an attacker's) would
    # each make a window delta and a row no evaluation reads: past the horizon behind
    # the watermark they are only counted (metrics, and the archive's late mark).
    acc, late = WindowAccumulator(DECODER.codecs, late_horizon=3600.0), LateLog()
    marked: list[PredictionEvent] = []
    now = T + 86_400
    old = [ev(T + 60 * i) for i in range(0, 1380, 7)]  # over an hour old, each its own window
    recent = ev(now - 1800)  # late too, but within the horizon
    acc.add_partition_batch(0, [ev(now), *old, recent], None, late, on_late_events=marked.extend)
    assert set(acc.deltas) == {key(now), key(now - 1800 - 1800 % 60)}
    assert acc.deltas[key(now - 1800 - 1800 % 60)].late == 1
    assert sum(n for _, n in late.calls) == len(old) + 1
    assert len(marked) == len(old) + 1
    # Without a horizon every window keeps its count, as before.
    acc, late = accumulator(), LateLog()
    acc.add_partition_batch(0, [ev(now), *old, recent], None, late)
    assert len(acc.deltas) == len(old) + 2
