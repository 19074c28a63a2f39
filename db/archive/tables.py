"""The archive tables' columns, and how buffered events become Arrow tables.

Tables are built column-wise from arrays the ingestion loop already has
(event times as floats, feature columns from the decoded structs), never row
by row: this is the archive's share of the ingestion cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from drift.schema import FeatureKind, ModelSpec, PredictionKind

TIMESTAMP = pa.timestamp("us", tz="UTC")
_US_PER_DAY = 86_400_000_000
_json = msgspec.json.Encoder()


def prediction_type(spec: ModelSpec) -> pa.DataType:
    """float64 for numerical predictions, string otherwise (JSON text for probabilities)."""
    return pa.float64() if spec.prediction.kind is PredictionKind.NUMERICAL else pa.string()


def feature_type(kind: FeatureKind) -> pa.DataType:
    return pa.float64() if kind is FeatureKind.NUMERICAL else pa.string()


def prediction_schema(spec: ModelSpec) -> pa.Schema:
    return pa.schema(
        [
            ("event_id", pa.string()),
            ("model_version", pa.string()),
            ("event_time", TIMESTAMP),
            ("date", pa.date32()),
            *[(f.name, feature_type(f.kind)) for f in spec.features],
            ("prediction", prediction_type(spec)),
            *_SOURCE,
            (ARRIVED_LATE, pa.bool_()),
        ]
    )


# True for a prediction that arrived after its window had closed: archived (it is
# still training data) but never counted in a window, so no late label may move it
# from unlabeled to labeled there. Null in rows archived before the column existed.
ARRIVED_LATE = "arrived_late"


_SOURCE = [("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64())]
LABEL_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("label", pa.string()),
        ("event_time", TIMESTAMP),
        ("date", pa.date32()),
        *_SOURCE,
    ]
)


def label_text(value: float | str | int | bool) -> str:
    """A label as its JSON scalar's text: 1 -> "1", "fraud" -> "fraud", True -> "true"."""
    return value if type(value) is str else _json.encode(value).decode()


def prediction_text(value: Any) -> str:
    """A categorical prediction as text, or probabilities as JSON text."""
    if type(value) is str:
        return value
    if isinstance(value, list | dict):
        return _json.encode(value).decode()
    return str(value)


def _times(seconds: Sequence[float] | np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Event times (epoch seconds) as microsecond timestamps, and their UTC dates."""
    us = np.round(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)
    days = (us // _US_PER_DAY).astype(np.int32)
    return pa.array(us, TIMESTAMP), pa.array(days, pa.date32())


def _source(topic: str, partitions: np.ndarray, offsets: np.ndarray) -> list[pa.Array]:
    n = len(offsets)
    topics = pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [topic]).cast(pa.string())
    return [topics, pa.array(partitions, pa.int32()), pa.array(offsets, pa.int64())]


def _feature(kind: FeatureKind, values: Any) -> pa.Array:
    if kind is FeatureKind.NUMERICAL:
        return pa.array(values, pa.float64(), from_pandas=False)
    # Categories are kept as text, as the drift sketches count them. Nearly always every
    # value already is text, and pyarrow converts that without a Python-level pass.
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([v if v is None or type(v) is str else str(v) for v in values], pa.string())


def prediction_table(
    spec: ModelSpec,
    event_ids: list[str],
    versions: list[str],
    times: Sequence[float] | np.ndarray,
    features: Mapping[str, Any],
    predictions: Sequence[Any],
    topic: str,
    partitions: np.ndarray,
    offsets: np.ndarray,
    late: np.ndarray | None = None,
) -> pa.Table:
    """One model's prediction events; ``features`` holds one column per feature name;
    ``late`` marks those that arrived after their window closed (none when None)."""
    event_time, date = _times(times)
    if spec.prediction.kind is PredictionKind.NUMERICAL:
        prediction = pa.array(predictions, pa.float64())
    else:
        prediction = pa.array([prediction_text(p) for p in predictions], pa.string())
    columns = [
        pa.array(event_ids, pa.string()),
        pa.array(versions, pa.string()),
        event_time,
        date,
        *[_feature(f.kind, features[f.name]) for f in spec.features],
        prediction,
        *_source(topic, partitions, offsets),
        pa.array(np.zeros(len(offsets), np.bool_) if late is None else late, pa.bool_()),
    ]
    return pa.Table.from_arrays(columns, schema=prediction_schema(spec))


def label_table(
    event_ids: list[str],
    labels: list[float | str | int | bool],
    times: Sequence[float] | np.ndarray,
    topic: str,
    partitions: np.ndarray,
    offsets: np.ndarray,
) -> pa.Table:
    event_time, date = _times(times)
    columns = [
        pa.array(event_ids, pa.string()),
        pa.array([label_text(v) for v in labels], pa.string()),
        event_time,
        date,
        *_source(topic, partitions, offsets),
    ]
    return pa.Table.from_arrays(columns, schema=LABEL_SCHEMA)
