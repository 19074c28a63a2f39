"""What the late-label join reads from the archive: a labels partition's offset range,
and the predictions of those labels' event ids.

Both reads filter on columns the Delta log keeps statistics of (offset, date),
so files outside the range are skipped without being opened; the event-id
filter is then applied to the remaining row groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from db.archive.export import read_table
from db.archive.settings import ArchiveSettings, Kind
from db.archive.tables import ARRIVED_LATE

LABEL_COLUMNS = ["event_id", "label", "event_time", "offset"]
PREDICTION_COLUMNS = [
    "event_id",
    "model_version",
    "event_time",
    "prediction",
    "offset",
    ARRIVED_LATE,
]


class ArchivedLabel(NamedTuple):
    """A label as archived: its value as JSON-scalar text (:func:`db.archive.label_text`)."""

    offset: int
    event_id: str
    label: str
    event_time: float


class ArchivedPrediction(NamedTuple):
    """A prediction as archived: a number, or text (JSON text for probabilities).

    ``arrived_late``: it came after its window closed and no window counted it.
    """

    event_id: str
    model_version: str
    event_time: float
    prediction: float | str
    arrived_late: bool = False


def _seconds(column: pa.ChunkedArray) -> list[float]:
    us = pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
    return (us / 1e6).tolist()  # type: ignore[no-any-return]


def _ids_in(partition: int, event_ids: Sequence[str], since: float, until: float) -> pc.Expression:
    """Rows of ``event_ids`` in one partition, dated from ``since`` to ``until`` (epoch
    seconds): the date bounds let Delta prune files by their partition column."""
    d = pc.field("date")
    first, last = (datetime.fromtimestamp(t, UTC).date() for t in (since, until))
    return (
        (pc.field("partition") == partition)
        & (d >= pa.scalar(first, pa.date32()))
        & (d <= pa.scalar(last, pa.date32()))
        & pc.field("event_id").isin(pa.array(sorted(set(event_ids)), pa.string()))
    )


def read_labels(
    settings: ArchiveSettings, model: str, partition: int, start: int, end: int
) -> list[ArchivedLabel]:
    """The model's archived labels of one labels partition at offsets [start, end),
    in offset order (none when nothing was archived yet)."""
    o = pc.field("offset")
    where = (pc.field("partition") == partition) & (o >= start) & (o < end)
    rows = read_table(settings, model, Kind.LABELS, where, LABEL_COLUMNS)
    if rows is None or rows.num_rows == 0:
        return []
    rows = rows.sort_by("offset")
    return [
        ArchivedLabel(*row)
        for row in zip(
            rows.column("offset").to_pylist(),
            rows.column("event_id").to_pylist(),
            rows.column("label").to_pylist(),
            _seconds(rows.column("event_time")),
            strict=True,
        )
    ]


def read_predictions(
    settings: ArchiveSettings,
    model: str,
    partition: int,
    event_ids: Sequence[str],
    since: float,
    until: float,
) -> dict[str, ArchivedPrediction]:
    """The first archived prediction (lowest offset) of each of ``event_ids`` in one
    predictions partition, with event time in [since, until] (epoch seconds)."""
    if not event_ids:
        return {}
    where = _ids_in(partition, event_ids, since, until)
    rows = read_table(
        settings, model, Kind.PREDICTIONS, where, PREDICTION_COLUMNS, optional=[ARRIVED_LATE]
    )
    if rows is None or rows.num_rows == 0:
        return {}
    # Descending offsets: the dict keeps the last row written per id, the first archived.
    rows = rows.sort_by([("offset", "descending")])
    times = _seconds(rows.column("event_time"))
    return {
        e: ArchivedPrediction(e, v, t, p, late is True)
        for e, v, t, p, late in zip(
            rows.column("event_id").to_pylist(),
            rows.column("model_version").to_pylist(),
            times,
            rows.column("prediction").to_pylist(),
            # Null in rows archived before the column existed: counted as on time, as then.
            rows.column(ARRIVED_LATE).to_pylist(),
            strict=True,
        )
        if since <= t <= until
    }


def earlier_labels(
    settings: ArchiveSettings,
    model: str,
    partition: int,
    event_ids: Sequence[str],
    before: int,
    since: float,
    until: float,
) -> dict[str, list[float]]:
    """Event times of the labels of ``event_ids`` archived in one labels partition below
    offset ``before``, dated in [since, until] (epoch seconds; the dates prune files)."""
    if not event_ids:
        return {}
    where = _ids_in(partition, event_ids, since, until) & (pc.field("offset") < before)
    rows = read_table(settings, model, Kind.LABELS, where, ["event_id", "event_time"])
    out: dict[str, list[float]] = {}
    if rows is None:
        return out
    times = _seconds(rows.column("event_time"))
    for e, t in zip(rows.column("event_id").to_pylist(), times, strict=True):
        out.setdefault(e, []).append(t)
    return out
