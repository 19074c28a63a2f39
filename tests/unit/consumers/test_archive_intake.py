"""The loop's archive buffer: a poll of many models is split by model, in offset order."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from consumers.archive import ArchiveIntake
from consumers.events import EventDecoder
from db.archive import Kind
from db.archive.errors import ArchiveUnavailable
from db.repositories import OffsetAdvance
from tests.harness.ingest import FRAUD, TOPIC, T


class Sink:
    """Keeps what each append was given."""

    def __init__(self) -> None:
        self.appends: list[tuple[str, Kind, pa.Table]] = []

    def append(
        self, model: str, kind: Kind, rows: pa.Table, next_offsets: Mapping[tuple[str, int], int]
    ) -> int:
        self.appends.append((model, kind, rows))
        return int(rows.num_rows)

    def close(self, timeout: float) -> bool:
        return True


def event(model: str, i: int) -> bytes:
    body = {
        "event_id": f"{model}-{i}",
        "model": model,
        "model_version": "v1",
        "timestamp": datetime.fromtimestamp(T + i, UTC).isoformat(),
        "features": {"amount": float(i)},
        "prediction": 0.5,
    }
    return json.dumps(body).encode()


def test_a_poll_of_many_models_is_archived_per_model_in_offset_order() -> None:
    models = [f"m{k}" for k in range(7)]
    decoder = EventDecoder({m: replace(FRAUD, name=m) for m in models})
    # Interleaved as a topic shared by many models delivers them; m6 is not archived.
    values = [event(models[i % 7], i) for i in range(70)]
    decoded = decoder.decode_batch(values)
    sink = Sink()
    intake = ArchiveIntake(sink, models[:6])
    columns = intake.add_predictions(
        decoder.codecs, TOPIC, 0, list(range(100, 170)), decoded.events, decoded.times
    )
    assert columns is None  # several models: the sketches read their own columns
    intake.flush([OffsetAdvance(TOPIC, 0, None, 170, None)])
    assert [(m, k) for m, k, _ in sink.appends] == [(m, Kind.PREDICTIONS) for m in models[:6]]
    for k, (model, _, rows) in enumerate(sink.appends):
        mine = list(range(k, 70, 7))
        assert rows.column("event_id").to_pylist() == [f"{model}-{i}" for i in mine]
        assert rows.column("offset").to_pylist() == [100 + i for i in mine]


def test_events_marked_late_are_flagged_in_their_own_models_rows_only() -> None:
    models = ["m0", "m1"]
    decoder = EventDecoder({m: replace(FRAUD, name=m) for m in models})
    sink = Sink()
    intake = ArchiveIntake(sink, models)
    for poll in range(2):  # the mark applies to the last poll's chunks, not earlier ones
        first = 10 * poll
        decoded = decoder.decode_batch([event(models[i % 2], i) for i in range(first, first + 10)])
        offsets = list(range(first, first + 10))
        intake.add_predictions(decoder.codecs, TOPIC, 0, offsets, decoded.events, decoded.times)
    # As the window accumulator reports them: the second poll's events 13 (m1) and 16 (m0).
    intake.mark_late([decoded.events[3], decoded.events[6]])
    intake.flush([OffsetAdvance(TOPIC, 0, None, 20, None)])
    late = {
        m: dict(zip(rows.column("offset").to_pylist(), rows.column("arrived_late").to_pylist(),
                    strict=True))
        for m, _, rows in sink.appends
    }  # fmt: skip
    assert {m: sorted(o for o, flag in v.items() if flag) for m, v in late.items()} == {
        "m0": [16], "m1": [13]
    }  # fmt: skip
    assert [len(v) for v in late.values()] == [10, 10]


def filled(models: list[str], workers: int, sink: Any) -> ArchiveIntake:
    """An intake holding ten events of each of ``models`` from partition 0."""
    decoder = EventDecoder({m: replace(FRAUD, name=m) for m in models})
    intake = ArchiveIntake(sink, models, workers)
    for k, model in enumerate(models):
        decoded = decoder.decode_batch([event(model, i) for i in range(10)])
        offsets = list(range(10 * k, 10 * k + 10))
        intake.add_predictions(decoder.codecs, TOPIC, 0, offsets, decoded.events, decoded.times)
    return intake


class Meeting(Sink):
    """Every append waits until ``parties`` appends are under way at once."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=30)

    def append(
        self, model: str, kind: Kind, rows: pa.Table, next_offsets: Mapping[tuple[str, int], int]
    ) -> int:
        self.barrier.wait()  # BrokenBarrierError (failing the flush) if they ran one by one
        return super().append(model, kind, rows, next_offsets)


def test_a_flush_appends_to_up_to_workers_tables_at_once() -> None:
    models = [f"m{k}" for k in range(6)]
    sink = Meeting(3)
    filled(models, 3, sink).flush([OffsetAdvance(TOPIC, 0, None, 60, None)])
    assert sorted(m for m, _, _ in sink.appends) == models


class Failing(Sink):
    def __init__(self, failing: set[str]) -> None:
        super().__init__()
        self.failing = failing
        self.tried: list[str] = []

    def append(
        self, model: str, kind: Kind, rows: pa.Table, next_offsets: Mapping[tuple[str, int], int]
    ) -> int:
        self.tried.append(model)
        if model in self.failing:
            raise ArchiveUnavailable(f"{model}: storage down")
        return super().append(model, kind, rows, next_offsets)


def test_a_failed_append_keeps_its_table_for_the_retry_and_starts_no_other() -> None:
    models = [f"m{k}" for k in range(4)]
    sink = Failing({"m1"})
    intake = filled(models, 1, sink)
    advance = [OffsetAdvance(TOPIC, 0, None, 40, None)]
    with pytest.raises(ArchiveUnavailable, match="m1"):
        intake.flush(advance)
    assert sink.tried == ["m0", "m1"]
    sink.failing.clear()
    intake.flush(advance)
    assert [m for m, _, _ in sink.appends] == ["m0", "m1", "m2", "m3"]
    assert all(rows.num_rows == 10 for _, _, rows in sink.appends)


def test_with_workers_the_first_failed_table_in_order_is_raised_and_the_rest_kept() -> None:
    models = [f"m{k}" for k in range(6)]
    sink = Failing({"m2", "m4"})
    intake = filled(models, 6, sink)  # one worker per table: every append starts
    advance = [OffsetAdvance(TOPIC, 0, None, 60, None)]
    with pytest.raises(ArchiveUnavailable, match="m2"):
        intake.flush(advance)
    sink.failing.clear()
    first = sorted(m for m, _, _ in sink.appends)
    intake.flush(advance)
    # Each table appended once in all: the retry holds only what had not been appended.
    assert sorted(m for m, _, _ in sink.appends) == models
    assert {"m2", "m4"}.isdisjoint(first)
