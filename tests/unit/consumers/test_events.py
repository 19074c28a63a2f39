"""Decoding prediction and label events against the configured model schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consumers.errors import InvalidEvent, InvalidReason
from consumers.events import (
    MAX_EVENT_ID,
    EventDecoder,
    LabelEvent,
    ModelCodec,
    PredictionEvent,
)
from db.repositories import _utc
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec

PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

FEATURES = (
    FeatureSpec("amount", FeatureKind.NUMERICAL),
    FeatureSpec("distance km", FeatureKind.NUMERICAL, nullable=True),
    FeatureSpec("country", FeatureKind.CATEGORICAL),
    FeatureSpec("channel", FeatureKind.CATEGORICAL, nullable=True),
)
MODELS = {
    "fraud": ModelSpec("fraud", FEATURES, PredictionSpec(PredictionKind.NUMERICAL), 60),
    "churn": ModelSpec("churn", FEATURES, PredictionSpec(PredictionKind.CATEGORICAL), 60),
    "topic": ModelSpec("topic", FEATURES, PredictionSpec(PredictionKind.PROBABILITIES), 60),
}
T0 = "2026-11-21T14:00:00Z"
T0_EPOCH = datetime(2026, 11, 21, 14, 0, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def decoder() -> EventDecoder:
    return EventDecoder(MODELS)


def prediction(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e-1",
        "model": "fraud",
        "model_version": "v1",
        "timestamp": T0,
        "features": {"amount": 12.5, "distance km": 3.0, "country": "de", "channel": "web"},
        "prediction": 0.25,
        "latency_ms": 4.5,
    }
    event.update(overrides)
    return event


def encode(event: Any) -> bytes:
    return json.dumps(event).encode()


def features_of(ev: PredictionEvent, model: str = "fraud") -> dict[str, Any]:
    codec = ModelCodec(MODELS[model])
    return {name: next(iter(values)) for name, values in codec.columns([ev.features]).items()}


def rejected(decoder: EventDecoder, value: bytes | None) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        decoder.decode_prediction(value)
    return info.value


# -- valid predictions ----------------------------------------------------------


def test_valid_numerical_prediction(decoder: EventDecoder) -> None:
    ev = decoder.decode_prediction(encode(prediction()))
    assert isinstance(ev, PredictionEvent)
    assert (ev.event_id, ev.model, ev.model_version) == ("e-1", "fraud", "v1")
    assert ev.event_time == T0_EPOCH
    assert ev.prediction == 0.25
    assert ev.latency_ms == 4.5
    assert features_of(ev) == {
        "amount": 12.5,
        "distance km": 3.0,
        "country": "de",
        "channel": "web",
    }


def test_integer_numerical_prediction_becomes_float(decoder: EventDecoder) -> None:
    ev = decoder.decode_prediction(encode(prediction(prediction=3)))
    assert ev.prediction == 3.0
    assert type(ev.prediction) is float


def test_integer_feature_becomes_float(decoder: EventDecoder) -> None:
    ev = decoder.decode_prediction(encode(prediction(features={"amount": 7, "country": "de"})))
    assert features_of(ev)["amount"] == 7.0
    assert isinstance(features_of(ev)["amount"], float)


@pytest.mark.parametrize(
    ("value", "label"),
    [("yes", "yes"), (3, "3"), (True, "True"), (False, "False"), ("", "")],
)
def test_valid_class_label_prediction(decoder: EventDecoder, value: Any, label: str) -> None:
    ev = decoder.decode_prediction(encode(prediction(model="churn", prediction=value)))
    assert decoder.codec(ev).predictions([ev]) == [label]


@pytest.mark.parametrize(
    ("value", "top"),
    [
        ([0.1, 0.7, 0.2], "1"),
        ([1], "0"),
        ([0.5, 0.5], "0"),  # ties go to the first class
        ([0, 0.0, 1.0], "2"),
        ({"cat": 0.2, "dog": 0.8}, "dog"),
        ({"b": 0.5, "a": 0.5}, "b"),
        ({"only": 0}, "only"),
    ],
)
def test_valid_probability_prediction(decoder: EventDecoder, value: Any, top: str) -> None:
    ev = decoder.decode_prediction(encode(prediction(model="topic", prediction=value)))
    assert decoder.codec(ev).predictions([ev]) == [top]


def test_unknown_extra_fields_are_ignored(decoder: EventDecoder) -> None:
    event = prediction(extra={"nested": [1, 2]}, trace="abc")
    event["features"] = {**event["features"], "unused": [1, {"a": None}]}
    ev = decoder.decode_prediction(encode(event))
    assert ev.event_id == "e-1"
    assert features_of(ev)["amount"] == 12.5


def test_nullable_features_missing_or_null_are_none(decoder: EventDecoder) -> None:
    missing = decoder.decode_prediction(encode(prediction(features={"amount": 1, "country": "x"})))
    assert features_of(missing) == {
        "amount": 1.0,
        "distance km": None,
        "country": "x",
        "channel": None,
    }
    null = decoder.decode_prediction(
        encode(
            prediction(features={"amount": 1, "country": 7, "distance km": None, "channel": None})
        )
    )
    assert features_of(null) == {"amount": 1.0, "distance km": None, "country": 7, "channel": None}


def test_latency_is_optional(decoder: EventDecoder) -> None:
    event = prediction()
    del event["latency_ms"]
    assert decoder.decode_prediction(encode(event)).latency_ms is None


@pytest.mark.parametrize(
    ("timestamp", "epoch"),
    [
        ("2026-11-21T14:00:00Z", T0_EPOCH),
        ("2026-11-21T15:00:00+01:00", T0_EPOCH),
        ("2026-11-21T09:30:00-04:30", T0_EPOCH),
        ("2026-11-21T14:00:00.250Z", T0_EPOCH + 0.25),
        ("1970-01-01T00:00:00Z", 0.0),
    ],
)
def test_timestamps_with_offsets(decoder: EventDecoder, timestamp: str, epoch: float) -> None:
    assert decoder.decode_prediction(encode(prediction(timestamp=timestamp))).event_time == epoch


def test_columns_follow_the_spec_order_whatever_the_struct_order() -> None:
    # Nullable features come first in the spec, the generated struct sorts them last.
    spec = ModelSpec(
        "m",
        (
            FeatureSpec("opt", FeatureKind.CATEGORICAL, nullable=True),
            FeatureSpec("req", FeatureKind.NUMERICAL),
        ),
        PredictionSpec(PredictionKind.NUMERICAL),
        60,
    )
    decoder = EventDecoder({"m": spec})
    codec = decoder.codecs["m"]
    base = '{"event_id": "e", "model": "m", "model_version": "v1", '
    base += '"timestamp": "2026-11-21T14:00:00Z", "prediction": 0.5, "features": '
    rows = [
        decoder.decode_prediction(f'{base}{{"req": 1}}}}'.encode()).features,
        decoder.decode_prediction(f'{base}{{"opt": "a", "req": 2}}}}'.encode()).features,
    ]
    columns = {name: list(values) for name, values in codec.columns(rows).items()}
    assert columns == {"opt": [None, "a"], "req": [1.0, 2.0]}
    assert list(codec.columns(rows)) == ["opt", "req"]


# -- invalid predictions --------------------------------------------------------


@pytest.mark.parametrize("value", [None, b""])
def test_empty_value(decoder: EventDecoder, value: bytes | None) -> None:
    exc = rejected(decoder, value)
    assert exc.kind is InvalidReason.EMPTY
    assert str(exc) == "empty: message has no value"


@pytest.mark.parametrize("value", [b"{", b"not json", b'{"a": 1,}', b"\xff\xfe", b'{"event_id": '])
def test_not_json(decoder: EventDecoder, value: bytes) -> None:
    exc = rejected(decoder, value)
    assert exc.kind is InvalidReason.MALFORMED
    assert exc.detail.startswith("not valid JSON: ")


@pytest.mark.parametrize(
    ("value", "got"), [(b"[1, 2]", "array"), (b"5", "int"), (b'"x"', "str"), (b"null", "null")]
)
def test_not_an_object(decoder: EventDecoder, value: bytes, got: str) -> None:
    exc = rejected(decoder, value)
    assert exc.kind is InvalidReason.SCHEMA
    assert exc.detail == f"Expected `object`, got `{got}`"


@pytest.mark.parametrize("field", ["event_id", "model", "model_version", "features", "prediction"])
def test_missing_field(decoder: EventDecoder, field: str) -> None:
    event = prediction()
    del event[field]
    exc = rejected(decoder, encode(event))
    assert exc.kind is InvalidReason.SCHEMA
    assert exc.detail == f"Object missing required field `{field}`"


def test_missing_timestamp_is_a_schema_error(decoder: EventDecoder) -> None:
    event = prediction()
    del event["timestamp"]
    exc = rejected(decoder, encode(event))
    assert exc.kind is InvalidReason.SCHEMA
    assert "`timestamp`" in exc.detail


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("event_id", 5, "Expected `str`, got `int` - at `$.event_id`"),
        ("event_id", None, "Expected `str`, got `null` - at `$.event_id`"),
        ("model", ["fraud"], "Expected `str` - at `$.model`"),
        ("model_version", 1.5, "Expected `str`, got `float` - at `$.model_version`"),
        ("latency_ms", "fast", "Expected `float | null`, got `str` - at `$.latency_ms`"),
    ],
)
def test_wrong_envelope_type(decoder: EventDecoder, field: str, value: Any, detail: str) -> None:
    exc = rejected(decoder, encode(prediction(**{field: value})))
    assert exc.kind is InvalidReason.SCHEMA
    assert exc.detail == detail


def test_unknown_model(decoder: EventDecoder) -> None:
    exc = rejected(decoder, encode(prediction(model="nope")))
    assert exc.kind is InvalidReason.UNKNOWN_MODEL
    assert exc.detail == "model 'nope' is not configured"


@pytest.mark.parametrize(
    ("features", "detail"),
    [
        (
            {"amount": True, "country": "de"},
            "Expected `float`, got `bool` - at `$.features.amount`",
        ),
        (
            {"amount": "12", "country": "de"},
            "Expected `float`, got `str` - at `$.features.amount`",
        ),
        (
            {"amount": None, "country": "de"},
            "Expected `float`, got `null` - at `$.features.amount`",
        ),
        (
            {"amount": 1, "country": "de", "distance km": "far"},
            "Expected `float | null`, got `str` - at `$.features.distance km`",
        ),
        (
            {"amount": 1, "country": 1.5},
            "Expected `bool | int | str`, got `float` - at `$.features.country`",
        ),
        (
            {"amount": 1, "country": {"iso": "de"}},
            "Expected `bool | int | str`, got `object` - at `$.features.country`",
        ),
        ({"country": "de"}, "Object missing required field `amount` - at `$.features`"),
        ([1, 2], "Expected `object`, got `array` - at `$.features`"),
        (None, "Expected `object`, got `null` - at `$.features`"),
    ],
)
def test_feature_of_the_wrong_type(decoder: EventDecoder, features: Any, detail: str) -> None:
    exc = rejected(decoder, encode(prediction(features=features)))
    assert exc.kind is InvalidReason.FEATURE
    assert exc.detail == detail
    assert str(exc) == f"feature: {detail}"


@pytest.mark.parametrize(
    "timestamp", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-21 14:00", 1_700_000_000, None, ""]
)
def test_unparsable_timestamp(decoder: EventDecoder, timestamp: Any) -> None:
    exc = rejected(decoder, encode(prediction(timestamp=timestamp)))
    assert exc.kind is InvalidReason.TIMESTAMP
    assert "`$.timestamp`" in exc.detail


@pytest.mark.parametrize("timestamp", ["2026-11-21T14:00:00", "2026-11-21T14:00:00.5"])
def test_timestamp_without_offset(decoder: EventDecoder, timestamp: str) -> None:
    exc = rejected(decoder, encode(prediction(timestamp=timestamp)))
    assert exc.kind is InvalidReason.TIMESTAMP
    assert exc.detail == "Expected `datetime` with a timezone component - at `$.timestamp`"


def test_timestamp_before_year_one_utc_is_rejected(decoder: EventDecoder) -> None:
    # 0001-01-01T00:00+05:00 is 0000-12-31T19:00Z, outside what datetime can hold.
    try:
        ev = decoder.decode_prediction(encode(prediction(timestamp="0001-01-01T00:00:00+05:00")))
    except InvalidEvent as exc:
        assert exc.kind is InvalidReason.TIMESTAMP
    else:
        # An accepted event must be storable: the store turns its window start into a datetime.
        _utc(MODELS["fraud"].window_start(ev.event_time))


PROBS = "expected a non-empty list or object of probabilities in [0, 1]"


@pytest.mark.parametrize(
    ("model", "value", "detail"),
    [
        ("fraud", "0.5", "Expected `float`, got `str` - at `$.prediction`"),
        ("fraud", True, "Expected `float`, got `bool` - at `$.prediction`"),
        ("fraud", None, "Expected `float`, got `null` - at `$.prediction`"),
        ("fraud", [0.5], "Expected `float`, got `array` - at `$.prediction`"),
        ("churn", 0.5, "Expected `bool | int | str`, got `float` - at `$.prediction`"),
        ("churn", None, "Expected `bool | int | str`, got `null` - at `$.prediction`"),
        ("churn", {"a": 1}, "Expected `bool | int | str`, got `object` - at `$.prediction`"),
        ("topic", [], PROBS),
        ("topic", {}, PROBS),
        ("topic", [0.5, 1.5], PROBS),
        ("topic", [-0.1], PROBS),
        ("topic", [True, 0.1], "Expected `float`, got `bool` - at `$.prediction[0]`"),
        ("topic", {"a": "0.5"}, "Expected `float`, got `str` - at `$.prediction[...]`"),
        ("topic", 0.5, "Expected `object | array`, got `float` - at `$.prediction`"),
        ("topic", "a", "Expected `object | array`, got `str` - at `$.prediction`"),
    ],
)
def test_bad_prediction(decoder: EventDecoder, model: str, value: Any, detail: str) -> None:
    exc = rejected(decoder, encode(prediction(model=model, prediction=value)))
    assert exc.kind is InvalidReason.PREDICTION
    assert exc.detail == detail


def test_integer_prediction_too_large_for_a_float(decoder: EventDecoder) -> None:
    raw = encode(prediction()).replace(b'"prediction": 0.25', b'"prediction": 1' + b"0" * 400)
    exc = rejected(decoder, raw)
    assert exc.kind is InvalidReason.PREDICTION


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (-0.5, "Expected `float` >= 0.0 - at `$.latency_ms`"),
        (3_600_001, "Expected `float` <= 3600000.0 - at `$.latency_ms`"),
    ],
)
def test_a_latency_out_of_range_is_invalid(decoder: EventDecoder, value: Any, detail: str) -> None:
    exc = rejected(decoder, encode(prediction(latency_ms=value)))
    assert exc.kind is InvalidReason.SCHEMA
    assert exc.detail == detail
    # The batch path refuses it the same way, and keeps the events beside it.
    batch = decoder.decode_batch([encode(prediction()), encode(prediction(latency_ms=value))])
    assert [i for i, _ in batch.invalid] == [1] and len(batch.events) == 1


def test_a_null_latency_or_the_bounds_are_valid(decoder: EventDecoder) -> None:
    for value, expected in ((None, None), (0, 0.0), (3_600_000, 3_600_000.0)):
        assert (
            decoder.decode_prediction(encode(prediction(latency_ms=value))).latency_ms == expected
        )


def test_numbers_out_of_float_range_elsewhere_are_invalid(decoder: EventDecoder) -> None:
    raw = encode(prediction()).replace(b'"amount": 12.5', b'"amount": 1e400')
    assert rejected(decoder, raw).kind is InvalidReason.FEATURE
    raw = encode(prediction()).replace(b'"latency_ms": 4.5', b'"latency_ms": 1e400')
    assert rejected(decoder, raw).kind is InvalidReason.SCHEMA


# -- labels ---------------------------------------------------------------------


def label(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": "e-1", "model": "fraud", "label": 1, "timestamp": T0}
    event.update(overrides)
    return event


@pytest.mark.parametrize("value", [1, 0.5, "fraud", True])
def test_valid_label(decoder: EventDecoder, value: Any) -> None:
    ev = decoder.decode_label(encode(label(label=value, extra="ignored")))
    assert ev == LabelEvent("e-1", "fraud", value, T0_EPOCH)
    assert type(ev.label) is type(value)


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (None, InvalidReason.EMPTY),
        (b"{", InvalidReason.MALFORMED),
        (label(model="nope"), InvalidReason.UNKNOWN_MODEL),
        (label(label=None), InvalidReason.SCHEMA),
        (label(label=[1]), InvalidReason.SCHEMA),
        ({"event_id": "e", "model": "fraud", "timestamp": T0}, InvalidReason.SCHEMA),
        (label(timestamp="2026-11-21T14:00:00"), InvalidReason.TIMESTAMP),
        (label(timestamp="soon"), InvalidReason.TIMESTAMP),
    ],
)
def test_invalid_label(decoder: EventDecoder, event: Any, kind: InvalidReason) -> None:
    value = event if event is None or isinstance(event, bytes) else encode(event)
    with pytest.raises(InvalidEvent) as info:
        decoder.decode_label(value)
    assert info.value.kind is kind


def test_label_wrong_type_names_the_field(decoder: EventDecoder) -> None:
    with pytest.raises(InvalidEvent) as info:
        decoder.decode_label(encode(label(label={"a": 1})))
    assert info.value.detail == "Expected `bool | int | float | str`, got `object` - at `$.label`"


# -- robustness -----------------------------------------------------------------


def _decodes_or_rejects(decoder: EventDecoder, value: bytes) -> None:
    try:
        ev = decoder.decode_prediction(value)
    except InvalidEvent as exc:
        assert isinstance(exc.kind, InvalidReason)
        assert exc.detail
        event(f"invalid: {exc.kind}")
    else:
        assert isinstance(ev, PredictionEvent)
        event("valid")
        assert ev.model in MODELS


@PROPERTY
@given(value=st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_are_invalid(decoder: EventDecoder, value: bytes) -> None:
    _decodes_or_rejects(decoder, value)


# Integers are bounded: a JSON integer beyond float range is a known bug (see the xfail).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@PROPERTY
@given(value=json_values)
def test_arbitrary_json_decodes_or_is_invalid(decoder: EventDecoder, value: Any) -> None:
    _decodes_or_rejects(decoder, json.dumps(value).encode())


valid_fields = {
    "model": st.sampled_from(list(MODELS)),
    "model_version": st.text(max_size=5),
    "timestamp": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    "features": st.fixed_dictionaries(
        {
            "amount": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-9, 9),
            "country": st.sampled_from(["de", "", 1, True]),
        },
        optional={"distance km": st.none() | st.floats(-1, 1), "channel": st.none() | st.just("x")},
    ),
    "prediction": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**70), 2**70),
        st.sampled_from(["yes", "no", True]),
        st.lists(st.floats(0.0, 1.0), max_size=4),
        st.dictionaries(st.text(max_size=3), st.floats(0.0, 1.0), max_size=3),
    ),
}


@PROPERTY
@given(
    valid=st.fixed_dictionaries(valid_fields),
    corrupt=st.dictionaries(st.sampled_from([*valid_fields, "event_id"]), json_values, max_size=2),
    dropped=st.sets(st.sampled_from([*valid_fields, "event_id"]), max_size=1),
)
def test_near_valid_envelopes_decode_or_are_invalid(
    decoder: EventDecoder, valid: dict[str, Any], corrupt: dict[str, Any], dropped: set[str]
) -> None:
    event = {"event_id": "e", **valid, **corrupt}
    for field in dropped:
        del event[field]
    _decodes_or_rejects(decoder, json.dumps(event).encode())


def test_batch_decoding_matches_one_by_one(decoder: EventDecoder) -> None:
    good = [encode(prediction(event_id=f"e{i}")) for i in range(3)]
    bad = [b"", encode(prediction(model="nope")), b"{"]
    mixed = [good[0], bad[0], good[1], bad[1], bad[2], good[2]]
    fast = decoder.decode_batch(good)
    assert [e.event_id for e in fast.events] == ["e0", "e1", "e2"] and not fast.invalid
    assert fast.times == [T0_EPOCH] * 3
    slow = decoder.decode_batch(mixed)
    assert [e.event_id for e in slow.events] == ["e0", "e1", "e2"]
    assert [(i, exc.kind) for i, exc in slow.invalid] == [
        (1, InvalidReason.EMPTY),
        (3, InvalidReason.UNKNOWN_MODEL),
        (4, InvalidReason.MALFORMED),
    ]


def test_batch_with_a_probability_model_still_checks_ranges() -> None:
    decoder = EventDecoder({"topic": MODELS["topic"]})
    ok = encode(prediction(model="topic", prediction=[0.2, 0.8]))
    out_of_range = encode(prediction(model="topic", prediction=[0.2, 1.8]))
    batch = decoder.decode_batch([ok, out_of_range])
    assert len(batch.events) == 1
    assert [(i, exc.kind) for i, exc in batch.invalid] == [(1, InvalidReason.PREDICTION)]


# -- poison pills: hostile payloads are rejected, never raised ------------------------

DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000  # about 30 KB, as found in the field


def test_deep_nesting_is_invalid_not_a_crash(decoder: EventDecoder) -> None:
    assert rejected(decoder, DEEP).kind is InvalidReason.MALFORMED
    assert "nested" in rejected(decoder, DEEP).detail
    buried = encode(prediction())[:-1] + b', "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert rejected(decoder, buried).kind is InvalidReason.MALFORMED
    with pytest.raises(InvalidEvent) as info:
        decoder.decode_label(DEEP)
    assert info.value.kind is InvalidReason.MALFORMED


def test_invalid_utf8_inside_a_string_is_invalid(decoder: EventDecoder) -> None:
    raw = encode(prediction()).replace(b'"e-1"', b'"e-\xff\xfe"')
    exc = rejected(decoder, raw)
    assert exc.kind is InvalidReason.MALFORMED
    assert "UTF-8" in exc.detail
    with pytest.raises(InvalidEvent):
        decoder.decode_label(encode(label()).replace(b'"e-1"', b'"\xed\xa0\x80"'))


def test_strings_longer_than_sql_keeps_are_invalid(decoder: EventDecoder) -> None:
    # model_version is a VARCHAR(200); event_id a primary key that a btree index must hold.
    assert decoder.decode_prediction(encode(prediction(model_version="v" * 200)))
    assert rejected(decoder, encode(prediction(model_version="v" * 201))).kind is (
        InvalidReason.SCHEMA
    )
    assert decoder.decode_prediction(encode(prediction(event_id="e" * MAX_EVENT_ID)))
    too_long = encode(prediction(event_id="e" * (MAX_EVENT_ID + 1)))
    assert rejected(decoder, too_long).kind is InvalidReason.SCHEMA
    with pytest.raises(InvalidEvent):
        decoder.decode_label(encode(label(event_id="e" * (MAX_EVENT_ID + 1))))


def test_one_poison_pill_keeps_its_batch_good_events(decoder: EventDecoder) -> None:
    good = [encode(prediction(event_id=f"e{i}")) for i in range(4)]
    utf8 = good[0].replace(b'"e0"', b'"\xc3\x28"')
    batch = decoder.decode_batch([good[0], DEEP, good[1], utf8, good[2], good[3]])
    assert [e.event_id for e in batch.events] == ["e0", "e1", "e2", "e3"]
    assert batch.times == [T0_EPOCH] * 4
    assert [(i, exc.kind) for i, exc in batch.invalid] == [
        (1, InvalidReason.MALFORMED),
        (3, InvalidReason.MALFORMED),
    ]


HAZARD = '"__hazard__"'


@st.composite
def hazards(draw: st.DrawFn) -> bytes:
    """Raw JSON text meant to break a decoder: deep nesting, huge numbers and strings, bad UTF-8."""
    kind = draw(st.sampled_from(["deep", "number", "string", "utf8"]))
    if kind == "deep":
        depth = draw(st.integers(1, 20_000))
        if draw(st.booleans()):
            return b"[" * depth + b"]" * depth
        return b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "number":
        digits = draw(st.integers(1, 5000))
        mantissa = draw(st.sampled_from(["9", "1", "0."]))
        exponent = draw(st.sampled_from(["", "e999999", "e-999999", "E+400"]))
        return f"{draw(st.sampled_from(['', '-']))}{mantissa}{'9' * digits}{exponent}".encode()
    if kind == "string":
        size = draw(st.integers(0, 1_000_000))
        return b'"' + draw(st.sampled_from([b"x", b"\\u00e9", "\u00e9".encode()])) * size + b'"'
    bad = draw(st.binary(min_size=1, max_size=8).filter(_not_utf8))
    return b'"' + bad.replace(b'"', b"").replace(b"\\", b"") + b'"'


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.replace(b'"', b"").replace(b"\\", b"").decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@PROPERTY
@given(
    valid=st.fixed_dictionaries(valid_fields),
    where=st.sampled_from(
        [*valid_fields, "event_id", "extra", "features.amount", "features.country", "prediction"]
    ),
    hazard=hazards(),
    label_side=st.booleans(),
)
def test_hostile_payloads_decode_or_are_invalid(
    decoder: EventDecoder, valid: dict[str, Any], where: str, hazard: bytes, label_side: bool
) -> None:
    event = {"event_id": "e", **valid}
    if label_side:
        event = {k: event[k] for k in ("event_id", "model", "timestamp")} | {"label": 1}
    if where.startswith("features."):
        event.setdefault("features", {})[where.split(".", 1)[1]] = "__hazard__"
    else:
        event[where] = "__hazard__"
    raw = json.dumps(event).encode().replace(HAZARD.encode(), hazard)
    if label_side:
        try:
            decoder.decode_label(raw)
        except InvalidEvent as exc:
            assert exc.detail
        return
    _decodes_or_rejects(decoder, raw)
    good = encode(prediction())
    batch = decoder.decode_batch([good, raw, good])
    assert [i for i, _ in batch.invalid] in ([], [1])
    assert len(batch.events) + len(batch.invalid) == 3
