"""The label side of the loop: what reaches the label archive."""

from __future__ import annotations

from typing import Any

from consumers.errors import InvalidEvent, InvalidReason
from consumers.events import LabelEvent
from consumers.intake import LabelIntake
from consumers.labels import LabelSpec
from drift.performance import Task
from drift.schema import PredictionKind
from tests.harness.ingest import DECODER, LABELS, TTL, FakeRecord, Stats, T, label


def test_a_label_its_model_cannot_take_is_dead_lettered_and_never_archived() -> None:
    # A regression's label must be a finite number. One archived anyway would reach the
    # late-label join, which the stream's dead letter says never saw it.
    spec = LabelSpec("fraud", PredictionKind.NUMERICAL, Task.REGRESSION, TTL)
    dead: list[tuple[int, InvalidReason]] = []

    def dead_letter(rec: Any, exc: InvalidEvent) -> None:
        dead.append((rec.offset, exc.kind))

    intake = LabelIntake(LABELS, {"fraud": spec}, Stats(), 300.0, dead_letter)  # type: ignore[arg-type]
    values = [label(T, "a", 1.5), label(T, "b", "N/A"), label(T, "c", True), label(T, "d", 2)]
    records = [FakeRecord(LABELS, 0, i, b"k", v) for i, v in enumerate(values)]
    archived: list[tuple[int, str]] = []

    def archive(offset: int, event: LabelEvent) -> None:
        archived.append((offset, event.event_id))

    intake.read(DECODER, 0, records, None, T + 1000.0, archive)
    assert archived == [(0, "a"), (3, "d")]
    assert dead == [(1, InvalidReason.LABEL), (2, InvalidReason.LABEL)]
    assert intake.count == 2
