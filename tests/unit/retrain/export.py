"""Parquet files in the archive's export format, written by the tests themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

START = datetime(2026, 11, 27, tzinfo=UTC)


def write_export(
    path: Path,
    frame: pd.DataFrame,
    numerical: tuple[str, ...],
    categorical: tuple[str, ...],
    start: datetime = START,
    step: timedelta = timedelta(seconds=1),
    prefix: str = "e",
) -> Path:
    """``frame`` (features and a ``label`` column) as exported labeled rows, one per ``step``."""
    n = len(frame)
    times = [start + i * step for i in range(n)]
    columns: dict[str, pa.Array] = {
        "event_id": pa.array([f"{prefix}{i:08d}" for i in range(n)], pa.string()),
        "model_version": pa.array(["v1"] * n, pa.string()),
        "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "prediction": pa.array([0.5] * n, pa.float64()),
        "label": pa.array([str(v) for v in frame["label"]], pa.string()),
        "label_time": pa.array([t + timedelta(hours=1) for t in times], pa.timestamp("us", "UTC")),
    }
    for name in numerical:
        columns[name] = pa.array(frame[name].astype(float), pa.float64(), from_pandas=True)
    for name in categorical:
        values = [None if pd.isna(v) else str(v) for v in frame[name]]
        columns[name] = pa.array(values, pa.string())
    pq.write_table(pa.table(columns), path)
    return path
