"""The event contract: bytes from Kafka to frozen, validated records.

Each configured model gets its own struct, a subclass of
:class:`PredictionEvent` tagged by the model's name, whose ``features`` and
``prediction`` carry that model's types. One msgspec call therefore picks the
model and type-checks the whole event in C, and the decoded struct is the
record itself: ingestion builds no further Python object per event.

Every failure becomes :class:`InvalidEvent` with a reason a person can act on,
whatever the payload does to the parser (nesting deep enough for a
``RecursionError``, bytes that are not UTF-8): one message must never stop its
partition, which would stop there again after every restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVar, Union

import msgspec
import numpy as np
from msgspec.structs import astuple

from consumers.errors import InvalidEvent, InvalidReason
from drift.latency_sketch import MAX_LATENCY_MS
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
# What SQL can hold: event_id is a primary key (a btree entry is at most ~2.7 KB on
# PostgreSQL, so 512 characters of up to 4 bytes fit) and model_version a VARCHAR(200).
MAX_EVENT_ID = 512
MAX_MODEL_VERSION = 200
EventId = Annotated[str, msgspec.Meta(max_length=MAX_EVENT_ID)]
# What the latency sketch can hold: finite (JSON has no NaN or infinity, and a number
# beyond a float's range is refused), not negative, at most an hour. A missing or
# null latency_ms is no latency: the event counts, its latency does not.
LatencyMs = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_LATENCY_MS)]
T = TypeVar("T")


class PredictionEvent(msgspec.Struct, frozen=True, gc=False, tag_field="model", kw_only=True):
    """A valid prediction; ``model`` is the class's tag, ``features`` its model's struct."""

    event_id: EventId
    model_version: Annotated[str, msgspec.Meta(max_length=MAX_MODEL_VERSION)]
    timestamp: AwareDatetime
    latency_ms: LatencyMs | None = None
    model: ClassVar[str]
    features: Any
    prediction: Any

    @property
    def event_time(self) -> float:
        """Event time in epoch seconds."""
        return self.timestamp.timestamp()


class _NoModel(PredictionEvent, frozen=True, tag="\x00"):
    """Never decoded: with one model the union would otherwise accept a missing tag."""

    model: ClassVar[str] = ""


class _LabelEnvelope(msgspec.Struct, frozen=True):
    event_id: EventId
    model: str
    label: float | str | int | bool
    timestamp: AwareDatetime


class LabelEvent(msgspec.Struct, frozen=True):
    event_id: str
    model: str
    label: float | str | int | bool
    event_time: float


@dataclass(slots=True)
class DecodedBatch:
    """The outcome of decoding one partition's poll, in offset order.

    ``events`` and ``times`` are the valid events and their event times;
    ``invalid`` pairs each rejected value's index in the input with the reason.
    """

    events: list[PredictionEvent] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    invalid: list[tuple[int, InvalidEvent]] = field(default_factory=list)

    def reject_after(self, limit: float, error: InvalidEvent) -> None:
        """Move the events stamped after ``limit`` to the invalid ones, with ``error``."""
        taken = {i for i, _ in self.invalid}
        positions = [i for i in range(len(self.events) + len(self.invalid)) if i not in taken]
        kept: list[tuple[PredictionEvent, float]] = []
        for position, event, t in zip(positions, self.events, self.times, strict=True):
            if t > limit:
                self.invalid.append((position, error))
            else:
                kept.append((event, t))
        self.events = [event for event, _ in kept]
        self.times = [t for _, t in kept]

    def reject(self, refused: Mapping[int, InvalidEvent]) -> None:
        """Move the events at these indexes of ``events`` to the invalid ones."""
        if not refused:
            return
        taken = {i for i, _ in self.invalid}
        positions = [i for i in range(len(self.events) + len(self.invalid)) if i not in taken]
        self.invalid.extend((positions[j], error) for j, error in refused.items())
        self.events = [e for j, e in enumerate(self.events) if j not in refused]
        self.times = [t for j, t in enumerate(self.times) if j not in refused]


class ModelCodec:
    """One model's event struct, and how to read its events back as columns."""

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
        self.event_type: type[PredictionEvent] = msgspec.defstruct(  # type: ignore[assignment]
            f"Prediction_{spec.name}",
            [("features", features), ("prediction", _PREDICTION_TYPES[spec.prediction.kind])],
            bases=(PredictionEvent,),
            tag=spec.name,
            namespace={"model": spec.name},
            kw_only=True,
            frozen=True,
            gc=False,
        )
        # Each feature's position among the struct's fields (required ones were moved first).
        order = features.__struct_fields__
        self._positions = [(f.name, order.index(f"f{i}")) for i, f in enumerate(spec.features)]
        # Never-null numbers go straight into an array, skipping an intermediate list.
        self._dense = {
            f.name for f in spec.features if f.kind is FeatureKind.NUMERICAL and not f.nullable
        }
        self.checks_predictions = spec.prediction.kind is PredictionKind.PROBABILITIES

    def columns(self, features: list[Any]) -> dict[str, Any]:
        """Column-wise values of decoded feature structs, keyed by feature name."""
        n, dense = len(features), self._dense
        if not n:
            return {name: np.empty(0) if name in dense else [] for name, _ in self._positions}
        # Each struct as a tuple, transposed in C: about a quarter less than reading
        # each field of each struct through an attribute getter.
        fields = list(zip(*map(astuple, features), strict=True))
        return {
            name: np.fromiter(fields[i], np.float64, n) if name in dense else list(fields[i])
            for name, i in self._positions
        }

    def predictions(self, events: list[PredictionEvent]) -> list[Any]:
        """The summarised prediction of each event: a number, or a class label as text
        (for probabilities, the most probable class)."""
        kind = self.spec.prediction.kind
        if kind is PredictionKind.PROBABILITIES:
            return [_top_class(e.prediction) for e in events]
        if kind is PredictionKind.CATEGORICAL:
            return [
                e.prediction if type(e.prediction) is str else str(e.prediction) for e in events
            ]
        return [e.prediction for e in events]


class EventDecoder:
    """Decodes prediction and label events for a fixed set of models."""

    def __init__(self, models: Mapping[str, ModelSpec]) -> None:
        self.codecs = {name: ModelCodec(spec) for name, spec in models.items()}
        self._by_type = {c.event_type: c for c in self.codecs.values()}
        union: Any = Union[(*self._by_type, _NoModel)]
        self._predictions: msgspec.json.Decoder[PredictionEvent] = msgspec.json.Decoder(union)
        self._labels = msgspec.json.Decoder(_LabelEnvelope)
        self._post_checks = any(c.checks_predictions for c in self.codecs.values())

    def codec(self, event: PredictionEvent) -> ModelCodec:
        return self._by_type[type(event)]

    def decode_prediction(self, value: bytes | None) -> PredictionEvent:
        event = _decode(self._predictions, value)
        try:
            _event_time(event)
            if self._post_checks and self._by_type[type(event)].checks_predictions:
                _top_class(event.prediction)
        except InvalidEvent:
            raise
        except Exception as exc:  # whatever one event does, only that event is rejected
            raise _undecodable(exc) from None
        return event

    def decode_batch(self, values: Sequence[bytes | None]) -> DecodedBatch:
        """Decode a poll's values; valid ones in one tight pass, the rest one by one.

        Any failure in the fast pass, of any type, only sends the batch down the
        per-message path, where each failure is pinned on its own message.
        """
        decode = self._predictions.decode
        try:
            events = [decode(v) for v in values]  # type: ignore[arg-type]
            times = [e.timestamp.timestamp() for e in events]
        except Exception:
            return self._decode_each(values)
        if self._post_checks or (times and min(times) < 0):
            return self._decode_each(values)
        return DecodedBatch(events, times)

    def _decode_each(self, values: Sequence[bytes | None]) -> DecodedBatch:
        batch = DecodedBatch()
        for i, value in enumerate(values):
            try:
                event = self.decode_prediction(value)
            except InvalidEvent as exc:
                batch.invalid.append((i, exc))
                continue
            batch.events.append(event)
            batch.times.append(event.event_time)
        return batch

    def decode_label(self, value: bytes | None) -> LabelEvent:
        env = _decode(self._labels, value)
        if env.model not in self.codecs:
            raise InvalidEvent(
                InvalidReason.UNKNOWN_MODEL, f"model {env.model!r} is not configured", env.model
            )
        seconds = env.timestamp.timestamp()
        if seconds < 0:
            raise InvalidEvent(InvalidReason.TIMESTAMP, "timestamp is before 1970-01-01T00:00:00Z")
        return LabelEvent(env.event_id, env.model, env.label, seconds)


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
    except Exception as exc:  # whatever one message does, only that message is rejected
        raise _undecodable(exc) from None


def _undecodable(exc: Exception) -> InvalidEvent:
    """The rejection of a message that made the parser itself fail."""
    if isinstance(exc, RecursionError):
        return InvalidEvent(InvalidReason.MALFORMED, "JSON nested too deeply to decode")
    if isinstance(exc, UnicodeDecodeError):
        return InvalidEvent(InvalidReason.MALFORMED, f"not valid UTF-8: {exc.reason}")
    return InvalidEvent(InvalidReason.MALFORMED, f"cannot be decoded: {type(exc).__name__}: {exc}")


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


def _event_time(event: PredictionEvent) -> float:
    seconds = event.timestamp.timestamp()
    if seconds < 0:
        # Windows and SQL timestamps start at the epoch; earlier times are data errors.
        raise InvalidEvent(InvalidReason.TIMESTAMP, "timestamp is before 1970-01-01T00:00:00Z")
    return seconds


def _top_class(value: list[float] | dict[str, float]) -> str:
    """The most probable class of a probability list (its index) or mapping (its key)."""
    if value and all(
        0.0 <= v <= 1.0 for v in (value.values() if isinstance(value, dict) else value)
    ):
        if isinstance(value, dict):
            return str(max(value, key=value.__getitem__))
        return str(max(range(len(value)), key=value.__getitem__))
    raise InvalidEvent(
        InvalidReason.PREDICTION, "expected a non-empty list or object of probabilities in [0, 1]"
    )
