"""The trainer's input: an exported Parquet file of labeled rows, split by time.

Columns follow the export format (``db.archive.export_labeled``): the reserved
columns below, then one column per feature (float64 numerical, string
categorical). Both modes split the same file the same way: rows sorted by
``event_time`` then ``event_id``, the last ``holdout_share`` of them (rounded
up) held out, so validation scores exactly the rows training never saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retrain.errors import TrainerError
from retrain.storage import filesystem

RESERVED = ("event_id", "model_version", "event_time", "prediction", "label", "label_time")


@dataclass(frozen=True)
class Dataset:
    """Labeled rows in time order, with the feature columns by kind."""

    frame: pd.DataFrame
    numerical: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def features(self) -> list[str]:
        return [*self.numerical, *self.categorical]


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame


def read_labeled(uri: str) -> Dataset:
    """Read the export at ``uri`` (a path, ``s3://`` or any fsspec URI) in time order."""
    try:
        fs, path = filesystem(uri)
        with fs.open(path, "rb") as source:
            table = pq.read_table(source)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise TrainerError(f"cannot read {uri}: {exc}") from exc
    missing = [c for c in ("event_id", "event_time", "label") if c not in table.column_names]
    if missing:
        raise TrainerError(f"{uri} lacks the column(s) {', '.join(missing)}")
    numerical: list[str] = []
    categorical: list[str] = []
    for column in table.schema:
        if column.name in RESERVED:
            continue
        if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
            numerical.append(column.name)
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            categorical.append(column.name)
        else:
            raise TrainerError(f"feature {column.name!r} has type {column.type}, not float/string")
    if not numerical and not categorical:
        raise TrainerError(f"{uri} has no feature columns")
    frame = table.to_pandas()
    frame = frame.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)
    for name in categorical:
        # Missing categories are a category of their own; the encoders need one dtype.
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return Dataset(frame, tuple(numerical), tuple(categorical))


def split_by_time(frame: pd.DataFrame, holdout_share: float) -> Split:
    """The first rows train, the last ``ceil(share * n)`` rows are the holdout."""
    if not 0.0 < holdout_share < 1.0:
        raise TrainerError(f"DRIFTWATCH_HOLDOUT_SHARE must be in (0, 1), got {holdout_share}")
    n = len(frame)
    if n < 2:
        raise TrainerError(f"{n} labeled row(s): too few to train and hold out")
    held = min(n - 1, max(1, math.ceil(n * holdout_share)))
    return Split(frame.iloc[: n - held], frame.iloc[n - held :])
