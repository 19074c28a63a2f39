"""The export: an archived model's labeled rows, joined, as one Parquet file.

Columns (the contract of the retraining executors): ``event_id``,
``model_version``, ``event_time``, ``prediction``, ``label``, ``label_time``,
then one column per feature. A prediction is exported when a label for its
event id is archived; an event id archived twice (a prediction or a label sent
twice) counts once, the first arrival (lowest offset) winning, as in the SQL
join. Rows are ordered by event time, then event id.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from db.archive.errors import ArchiveError, translate
from db.archive.settings import ArchiveSettings, Kind
from db.archive.tables import LABEL_SCHEMA, TIMESTAMP, prediction_schema
from drift.schema import ModelSpec

if TYPE_CHECKING:
    # Only a type here; importing pyarrow.dataset imports pandas, which the ingest process
    # (it imports this package to write the archive) would then carry for nothing.
    import pyarrow.dataset as pads

_FIXED = ("event_id", "model_version", "event_time", "prediction", "label", "label_time")


@dataclass(frozen=True)
class ExportSummary:
    rows: int
    first_event_time: datetime | None
    last_event_time: datetime | None


def read_table(
    settings: ArchiveSettings,
    model: str,
    kind: Kind,
    where: pads.Expression | None = None,
    columns: list[str] | None = None,
    optional: Sequence[str] = (),
) -> pa.Table | None:
    """The table's rows at its latest version (None when nothing was archived yet).

    ``optional`` columns (of ``columns``) come back as nulls from a table written
    before they existed.
    """
    uri = settings.table_uri(model, kind)
    try:
        table = DeltaTable(uri, storage_options=dict(settings.storage_options) or None)
        dataset = table.to_pyarrow_dataset()
        missing = [c for c in optional if c not in dataset.schema.names]
        present = None if columns is None else [c for c in columns if c not in missing]
        rows = dataset.to_table(filter=where, columns=present)
    except TableNotFoundError:
        return None
    except Exception as exc:
        raise translate(exc, f"reading {uri}") from exc
    for name in missing:
        rows = rows.append_column(name, pa.nulls(rows.num_rows))
    return rows


def _first_per_event(rows: pa.Table) -> pa.Table:
    """One row per event id: the first to arrive (lowest partition, then offset)."""
    ordered = rows.sort_by([("event_id", "ascending"), ("partition", "ascending"),
                            ("offset", "ascending")])  # fmt: skip
    ordered = ordered.append_column("_row", pa.array(range(ordered.num_rows), pa.int64()))
    firsts = ordered.group_by("event_id").aggregate([("_row", "min")]).column("_row_min")
    return ordered.take(firsts).drop_columns(["_row"])


def _window(start: datetime | None, end: datetime | None) -> pads.Expression | None:
    """Event times in [start, end), with the date bounds that prune partitions."""
    where: pads.Expression | None = None
    t, d = pc.field("event_time"), pc.field("date")
    if start is not None:
        where = (t >= pa.scalar(start, TIMESTAMP)) & (d >= pa.scalar(start.date(), pa.date32()))
    if end is not None:
        upper = (t < pa.scalar(end, TIMESTAMP)) & (d <= pa.scalar(end.date(), pa.date32()))
        where = upper if where is None else where & upper
    return where


def labeled_rows(
    settings: ArchiveSettings, model: ModelSpec, start: datetime | None, end: datetime | None
) -> pa.Table:
    """The joined labeled rows in the export's columns and order."""
    for bound in (start, end):
        if bound is not None and bound.tzinfo is None:
            raise ArchiveError("export bounds must be timezone-aware datetimes")
    features = [f.name for f in model.features]
    wanted = [*_FIXED, *features]
    schema = prediction_schema(model)
    empty = pa.schema([(n, TIMESTAMP if n == "label_time" else _type(schema, n)) for n in wanted])
    predictions = read_table(settings, model.name, Kind.PREDICTIONS, _window(start, end))
    labels = read_table(
        settings, model.name, Kind.LABELS, columns=["event_id", "label", "event_time",
                                                    "partition", "offset"]
    )  # fmt: skip
    if predictions is None or labels is None or predictions.num_rows == 0:
        return empty.empty_table()
    firsts = _first_per_event(labels).select(["event_id", "label", "event_time"])
    firsts = firsts.rename_columns(["event_id", "label", "label_time"])
    joined = _first_per_event(predictions).join(firsts, "event_id", join_type="inner")
    joined = joined.sort_by([("event_time", "ascending"), ("event_id", "ascending")])
    return joined.select(wanted).cast(empty)


def _type(schema: pa.Schema, name: str) -> pa.DataType:
    return pa.string() if name == "label" else schema.field(name).type


def export_labeled(
    settings: ArchiveSettings,
    model: ModelSpec,
    start: datetime | None,
    end: datetime | None,
    dest: str,
) -> ExportSummary:
    """Write the joined labeled rows with event time in [start, end) to ``dest`` (Parquet).

    ``dest`` is a local path or an fsspec URI; a local file appears whole or not at all.
    """
    rows = labeled_rows(settings, model, start, end)
    try:
        if dest.lower().startswith(("s3://", "s3a://")):
            # pyarrow's own S3 client (credentials from the AWS_* environment): s3fs
            # cannot be installed beside the kubernetes client.
            pq.write_table(rows, "s3://" + dest.split("://", 1)[1])
        elif "://" in dest and not dest.startswith("file://"):
            with fsspec.open(dest, "wb") as out:
                pq.write_table(rows, out)
        else:
            path = Path(dest.removeprefix("file://"))
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            pq.write_table(rows, partial)
            os.replace(partial, path)
    except OSError as exc:
        raise translate(exc, f"writing {dest}") from exc
    times = rows.column("event_time")
    if rows.num_rows == 0:
        return ExportSummary(0, None, None)
    return ExportSummary(rows.num_rows, _utc(times[0].as_py()), _utc(times[-1].as_py()))


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


__all__ = ["LABEL_SCHEMA", "ExportSummary", "export_labeled", "labeled_rows", "read_table"]
