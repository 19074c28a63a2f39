"""Building reference profiles: from a data file, or from windows already in SQL."""

from __future__ import annotations

import sys
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.profiles import ProfileInfo, ProfileRepository
from db.repositories import WindowAggregateRepository
from db.session import transaction
from drift.profile import ReferenceProfile
from drift.schema import FeatureKind, ModelSpec, PredictionKind
from drift.sketch import RowSample
from service.config import ModelConfig
from service.errors import ServiceError

PREDICTION = "prediction"
_CHUNK_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class BuiltProfile:
    features: ReferenceProfile
    prediction: ReferenceProfile | None
    source: str


def read_reference(
    path: Path,
    spec: ModelSpec,
    prediction_column: str | None = PREDICTION,
    progress: bool = True,
) -> dict[str, Any]:
    """The model's feature columns (and prediction, when present) from a CSV or Parquet file.

    Categorical columns are read as text, as events' categories are compared.
    """
    if not path.is_file():
        raise ServiceError(f"reference file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frames = _parquet(path, progress)
    elif suffix in (".csv", ".gz", ".txt"):
        frames = _csv(path, spec, prediction_column, progress)
    else:
        raise ServiceError(f"reference file {path}: expected a .csv or .parquet file")
    import pandas as pd

    try:
        frame = pd.concat(list(frames), ignore_index=True)
    except (ValueError, OSError) as exc:
        raise ServiceError(f"cannot read reference file {path}: {exc}") from exc
    missing = [f.name for f in spec.features if f.name not in frame.columns]
    if missing:
        raise ServiceError(f"reference file {path} lacks the model's features {missing}")
    if frame.empty:
        raise ServiceError(f"reference file {path} has no rows")
    wanted = [f.name for f in spec.features]
    if prediction_column and prediction_column in frame.columns:
        wanted.append(prediction_column)
    return {name: _typed(frame[name], spec, name, prediction_column) for name in wanted}


def _typed(column: Any, spec: ModelSpec, name: str, prediction_column: str | None) -> Any:
    import pandas as pd

    if name == prediction_column:
        numeric = spec.prediction.kind is PredictionKind.NUMERICAL
    else:
        numeric = spec.feature_index[name].kind is FeatureKind.NUMERICAL
    if numeric:
        converted = pd.to_numeric(column, errors="coerce")
        bad = int(converted.isna().sum() - column.isna().sum())
        if bad:
            raise ServiceError(f"reference column {name!r}: {bad} value(s) are not numbers")
        return converted.astype("float64")
    return column.astype("object").where(column.notna(), None)


def _csv(
    path: Path, spec: ModelSpec, prediction_column: str | None, progress: bool
) -> Iterator[Any]:
    import pandas as pd
    from tqdm import tqdm

    text_columns: dict[Hashable, str] = {
        f.name: "string" for f in spec.features if f.kind is FeatureKind.CATEGORICAL
    }
    if prediction_column and spec.prediction.kind is not PredictionKind.NUMERICAL:
        text_columns[prediction_column] = "string"
    with (
        open(path, "rb") as raw,
        tqdm(
            total=path.stat().st_size,
            desc=f"reading {path.name}",
            unit="B",
            unit_scale=True,
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        try:
            source: Any = raw
            # A file object hides its name, so compression is not inferred.
            reader = pd.read_csv(
                source,
                chunksize=_CHUNK_ROWS,
                dtype=text_columns,
                compression="gzip" if path.suffix.lower() == ".gz" else None,
            )
            for chunk in reader:
                bar.update(raw.tell() - bar.n)
                yield chunk
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise ServiceError(f"cannot read reference file {path}: {exc}") from exc


def _parquet(path: Path, progress: bool) -> Iterator[Any]:
    import pyarrow.parquet as pq
    from tqdm import tqdm

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise ServiceError(f"cannot read reference file {path}: {exc}") from exc
    with tqdm(
        total=parquet.metadata.num_rows,
        desc=f"reading {path.name}",
        unit="rows",
        disable=not progress,
        file=sys.stderr,
    ) as bar:
        for batch in parquet.iter_batches(batch_size=_CHUNK_ROWS):
            bar.update(batch.num_rows)
            yield batch.to_pandas()


def profile_columns(
    columns: dict[str, Any],
    spec: ModelSpec,
    model: ModelConfig,
    source: str,
    prediction_column: str | None = PREDICTION,
    bins: int | None = None,
    sample_size: int | None = None,
) -> BuiltProfile:
    options = {
        "bins": bins or model.drift.reference_bins,
        "sample_size": sample_size or model.drift.reference_sample,
    }
    features = ReferenceProfile.from_columns(
        columns, {f.name: f.kind for f in spec.features}, **options
    )
    prediction = None
    if prediction_column and prediction_column in columns:
        kind = (
            FeatureKind.NUMERICAL
            if spec.prediction.kind is PredictionKind.NUMERICAL
            else FeatureKind.CATEGORICAL
        )
        prediction = ReferenceProfile.from_columns(
            {PREDICTION: columns[prediction_column]}, {PREDICTION: kind}, **options
        )
    return BuiltProfile(features, prediction, source)


def stream_sample(
    sessions: sessionmaker[Session], spec: ModelSpec, start: datetime, end: datetime
) -> tuple[dict[str, Any], int]:
    """A uniform sample of the events of ``spec``'s windows within [start, end).

    Window row samples are bottom-k samples by one hash, so merging them gives
    the bottom-k of all those events: a uniform sample as large as the smallest
    window sample. Returns the sample's columns and how many events it stands for.
    """
    names = [f.name for f in spec.features]
    merged: RowSample | None = None
    events = 0
    with sessions() as session:
        for sketch in WindowAggregateRepository(session).sketches_within(spec.name, start, end):
            if list(sketch.features) != names:
                continue  # rows of an older feature set
            events += sketch.events
            if merged is None:
                merged = sketch.sample
            else:
                merged.merge(sketch.sample)
    if merged is None or not merged.rows:
        raise ServiceError(
            f"no stored window of model {spec.name!r} with a row sample lies within "
            f"{start.isoformat()} .. {end.isoformat()}"
        )
    columns = {name: merged.column(i) for i, name in enumerate([*names, PREDICTION])}
    return columns, events


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time (UTC unless it says otherwise) or epoch seconds."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ServiceError(
            f"{text!r} is not a time; use ISO 8601 (2026-11-21T14:00:00Z) or epoch seconds"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def store(
    sessions: sessionmaker[Session], model: str, built: BuiltProfile, now: datetime
) -> ProfileInfo:
    with transaction(sessions) as session:
        return ProfileRepository(session).add(
            model, built.features, built.prediction, built.source, now
        )
