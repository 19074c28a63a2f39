"""The loop's archive buffer: a poll of many models is split by model, in offset order."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import pyarrow as pa

from consumers.archive import ArchiveIntake
from consumers.events import EventDecoder
from db.archive import Kind
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
