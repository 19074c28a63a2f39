"""The event contract: bytes from Kafka to frozen, validated records.

Decoding is two-step so that type checks run inside msgspec's C decoder: the
envelope is decoded first, leaving ``features`` raw, then the features are
decoded with a struct generated from the named model's schema. Every failure
becomes :class:`InvalidEvent` with a reason a person can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from operator import attrgetter
from typing import Annotated, Any, TypeVar, Union

import msgspec

from consumers.errors import InvalidEvent, InvalidReason
from drift.schema import FeatureKind, ModelSpec, PredictionKind

Category = str | int | bool
# Timezone-aware timestamps only: a naive one is ambiguous, and msgspec checks it in C.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
# Prediction types checked by the decoder; probabilities get a range check after it.
_PREDICTION_TYPES: dict[PredictionKind, Any] = {
    PredictionKind.NUMERICAL: float,
    PredictionKind.CATEGORICAL: Category,
    PredictionKind.PROBABILITIES: list[float] | dict[str, float],
}
T = TypeVar("T")


class _NoModel(msgspec.Struct, frozen=True, tag_field="model", tag="\x00"):
    pass


class _LabelEnvelope(msgspec.Struct, frozen=True):
    event_id: str
    model: str
    label: float | str | int | bool
    timestamp: AwareDatetime


class PredictionEvent(msgspec.Struct, frozen=True, gc=False):
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
        features = msgspec.defstruct(
            f"Features_{spec.name}", fields, rename=rename, frozen=True, gc=False
        )
        # The envelope is tagged by ``model``: one decoder call picks the model's
        # struct and type-checks its features in C, with no second pass.
        self.envelope: type[msgspec.Struct] = msgspec.defstruct(
            f"Prediction_{spec.name}",
            [
                ("event_id", str),
                ("model_version", str),
                ("timestamp", AwareDatetime),
                ("features", features),
                ("prediction", _PREDICTION_TYPES[spec.prediction.kind]),
                ("latency_ms", float | None, None),
            ],
            tag_field="model",
            tag=spec.name,
            frozen=True,
            gc=False,
        )
        self._getters = [(f.name, attrgetter(f"f{i}")) for i, f in enumerate(spec.features)]

    def columns(self, features: list[Any]) -> dict[str, list[Any]]:
        """Column-wise values of decoded feature structs, keyed by feature name."""
        return {name: list(map(get, features)) for name, get in self._getters}


class EventDecoder:
    """Decodes prediction and label events for a fixed set of models."""

    def __init__(self, models: Mapping[str, ModelSpec]) -> None:
        self.codecs = {name: ModelCodec(spec) for name, spec in models.items()}
        self._by_type = {c.envelope: c for c in self.codecs.values()}
        # A union of one tagged struct would accept a missing tag; the sentinel,
        # whose tag no event can carry, keeps ``model`` required.
        union: Any = Union[(*self._by_type, _NoModel)]
        self._predictions: msgspec.json.Decoder[Any] = msgspec.json.Decoder(union)
        self._labels = msgspec.json.Decoder(_LabelEnvelope)

    def decode_prediction(self, value: bytes | None) -> PredictionEvent:
        env = _decode(self._predictions, value)
        codec = self._by_type[type(env)]
        prediction = env.prediction
        if type(prediction) is not float and type(prediction) is not str:
            prediction = _prediction(codec.spec.prediction.kind, prediction)
        return PredictionEvent(
            event_id=env.event_id,
            model=codec.spec.name,
            model_version=env.model_version,
            event_time=_event_time(env.timestamp),
            features=env.features,
            prediction=prediction,
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
        raise InvalidEvent(_classify(text), _explain(text)) from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent(InvalidReason.MALFORMED, f"not valid JSON: {exc}") from None


def _classify(text: str) -> InvalidReason:
    if "`$.features" in text:
        return InvalidReason.FEATURE
    if "`$.prediction" in text:
        return InvalidReason.PREDICTION
    if "`$.timestamp`" in text:
        return InvalidReason.TIMESTAMP
    if text.startswith("Invalid value") and text.endswith("`$.model`"):
        return InvalidReason.UNKNOWN_MODEL
    return InvalidReason.SCHEMA


def _explain(text: str) -> str:
    if text.startswith("Invalid value") and text.endswith("`$.model`"):
        return f"model {text.split(chr(39))[1]!r} is not configured"
    return text


def _event_time(ts: datetime) -> float:
    seconds = ts.timestamp()
    if seconds < 0:
        # Windows and SQL timestamps start at the epoch; earlier times are data errors.
        raise InvalidEvent(InvalidReason.TIMESTAMP, "timestamp is before 1970-01-01T00:00:00Z")
    return seconds


def _prediction(kind: PredictionKind, value: Any) -> str:
    """Class labels as text, probabilities as their top class; types are checked already."""
    if kind is PredictionKind.PROBABILITIES:
        return _top_class(value)
    return str(value)


def _top_class(value: Any) -> str:
    """The most probable class of a probability list (its index) or mapping (its key)."""
    if isinstance(value, list) and value and all(_is_prob(v) for v in value):
        return str(max(range(len(value)), key=value.__getitem__))
    if isinstance(value, dict) and value and all(_is_prob(v) for v in value.values()):
        return str(max(value, key=value.__getitem__))
    raise InvalidEvent(
        InvalidReason.PREDICTION, "expected a non-empty list or object of probabilities in [0, 1]"
    )


def _is_prob(v: float) -> bool:
    return 0.0 <= v <= 1.0
