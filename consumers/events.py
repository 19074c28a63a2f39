"""The event contract: bytes from Kafka to frozen, validated records.

Decoding is two-step so that type checks run inside msgspec's C decoder: the
envelope is decoded first, leaving ``features`` raw, then the features are
decoded with a struct generated from the named model's schema. Every failure
becomes :class:`InvalidEvent` with a reason a person can act on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar

import msgspec

from consumers.errors import InvalidEvent, InvalidReason
from drift.schema import FeatureKind, ModelSpec, PredictionKind

Category = str | int | bool
T = TypeVar("T")


class _PredictionEnvelope(msgspec.Struct, frozen=True):
    event_id: str
    model: str
    model_version: str
    timestamp: datetime
    features: msgspec.Raw
    prediction: Any
    latency_ms: float | None = None


class _LabelEnvelope(msgspec.Struct, frozen=True):
    event_id: str
    model: str
    label: float | str | int | bool
    timestamp: datetime


class PredictionEvent(msgspec.Struct, frozen=True):
    """A valid prediction. ``features`` is the model's generated struct."""

    event_id: str
    model: str
    model_version: str
    event_time: float
    features: Any
    prediction: float | str
    latency_ms: float | None


class LabelEvent(msgspec.Struct, frozen=True):
    event_id: str
    model: str
    label: float | str | int | bool
    event_time: float


class ModelCodec:
    """Decodes the ``features`` of one model and reads them back as columns."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        for i, f in enumerate(spec.features):
            # Generated attribute names: feature names need not be identifiers.
            attr = f"f{i}"
            rename[attr] = f.name
            base: Any = float if f.kind is FeatureKind.NUMERICAL else Category
            fields.append((attr, base | None, None) if f.nullable else (attr, base))
        # Required fields must precede optional ones in a struct definition.
        fields.sort(key=len)
        struct = msgspec.defstruct(
            f"Features_{spec.name}", fields, rename=rename, frozen=True, gc=False
        )
        self._decoder = msgspec.json.Decoder(struct)
        self._getters = [(f.name, attrgetter(f"f{i}")) for i, f in enumerate(spec.features)]

    def decode_features(self, raw: msgspec.Raw) -> Any:
        try:
            return self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            text = str(exc)
            detail = (
                text.replace("`$", "`$.features", 1)
                if "`$" in text
                else f"{text} - at `$.features`"
            )
            raise InvalidEvent(InvalidReason.FEATURE, detail) from None

    def columns(self, features: list[Any]) -> dict[str, list[Any]]:
        return {name: list(map(get, features)) for name, get in self._getters}


class EventDecoder:
    """Decodes prediction and label events for a fixed set of models."""

    def __init__(self, models: Mapping[str, ModelSpec]) -> None:
        self.codecs = {name: ModelCodec(spec) for name, spec in models.items()}
        self._predictions = msgspec.json.Decoder(_PredictionEnvelope)
        self._labels = msgspec.json.Decoder(_LabelEnvelope)

    def decode_prediction(self, value: bytes | None) -> PredictionEvent:
        env = _decode(self._predictions, value)
        codec = self._codec(env.model)
        return PredictionEvent(
            event_id=env.event_id,
            model=env.model,
            model_version=env.model_version,
            event_time=_event_time(env.timestamp),
            features=codec.decode_features(env.features),
            prediction=_prediction(codec.spec.prediction.kind, env.prediction),
            latency_ms=env.latency_ms,
        )

    def decode_label(self, value: bytes | None) -> LabelEvent:
        env = _decode(self._labels, value)
        self._codec(env.model)
        return LabelEvent(env.event_id, env.model, env.label, _event_time(env.timestamp))

    def _codec(self, model: str) -> ModelCodec:
        codec = self.codecs.get(model)
        if codec is None:
            raise InvalidEvent(InvalidReason.UNKNOWN_MODEL, f"model {model!r} is not configured")
        return codec


def _decode(decoder: msgspec.json.Decoder[T], value: bytes | None) -> T:
    if not value:
        raise InvalidEvent(InvalidReason.EMPTY, "message has no value")
    try:
        return decoder.decode(value)
    except msgspec.ValidationError as exc:
        text = str(exc)
        kind = InvalidReason.TIMESTAMP if "$.timestamp" in text else InvalidReason.SCHEMA
        raise InvalidEvent(kind, text) from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent(InvalidReason.MALFORMED, f"not valid JSON: {exc}") from None


def _event_time(ts: datetime) -> float:
    if ts.tzinfo is None:
        raise InvalidEvent(
            InvalidReason.TIMESTAMP, "timestamp has no UTC offset (use e.g. 2026-11-21T14:00:00Z)"
        )
    seconds = ts.timestamp()
    if seconds < 0:
        # Windows and SQL timestamps start at the epoch; earlier times are data errors.
        raise InvalidEvent(InvalidReason.TIMESTAMP, "timestamp is before 1970-01-01T00:00:00Z")
    return seconds


def _prediction(kind: PredictionKind, value: Any) -> float | str:
    if kind is PredictionKind.NUMERICAL:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)  # JSON integers may be too large for a float
            except OverflowError:
                number = math.inf
            if math.isfinite(number):
                return number
            raise InvalidEvent(InvalidReason.PREDICTION, "number is out of range")
        raise InvalidEvent(InvalidReason.PREDICTION, f"expected a number, got {_type(value)}")
    if kind is PredictionKind.CATEGORICAL:
        if isinstance(value, str | int | bool):
            return value if isinstance(value, str) else str(value)
        raise InvalidEvent(InvalidReason.PREDICTION, f"expected a class label, got {_type(value)}")
    return _top_class(value)


def _top_class(value: Any) -> str:
    """The most probable class of a probability list (its index) or mapping (its key)."""
    if isinstance(value, list) and value and all(_is_prob(v) for v in value):
        return str(max(range(len(value)), key=value.__getitem__))
    if isinstance(value, dict) and value and all(_is_prob(v) for v in value.values()):
        return str(max(value, key=value.__getitem__))
    raise InvalidEvent(
        InvalidReason.PREDICTION,
        f"expected a non-empty list or object of probabilities, got {_type(value)}",
    )


def _is_prob(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__
