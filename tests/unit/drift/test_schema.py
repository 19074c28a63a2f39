"""ModelSpec window arithmetic and the validation of specs."""

from __future__ import annotations

import itertools

import pytest

from drift.schema import (
    FeatureKind,
    FeatureSpec,
    ModelSpec,
    PredictionKind,
    PredictionSpec,
    default_edges,
)

NUM = FeatureSpec("x", FeatureKind.NUMERICAL, edges=(0.0, 1.0))
CAT_PRED = PredictionSpec(PredictionKind.CATEGORICAL)


def spec(window: int = 60, lateness: int = 0) -> ModelSpec:
    return ModelSpec(
        "m", (NUM,), CAT_PRED, window_seconds=window, allowed_lateness_seconds=lateness
    )


@pytest.mark.parametrize(
    ("event_time", "start"),
    [
        (0.0, 0),
        (59.999, 0),
        (60.0, 60),
        (119.5, 60),
        (1_700_000_000.0, 1_699_999_980),
        (-0.5, -60),
        (-60.0, -60),
        (-60.5, -120),
    ],
)
def test_window_start(event_time: float, start: int) -> None:
    assert spec().window_start(event_time) == start


def test_window_start_is_an_int() -> None:
    assert type(spec(window=300).window_start(1234.5)) is int
    assert spec(window=300).window_start(1234.5) == 1200


def test_is_late_without_watermark_is_never_late() -> None:
    assert spec(lateness=0).is_late(0.0, None) is False


@pytest.mark.parametrize(
    ("event_time", "watermark", "late"),
    [
        # Window [60, 120) closes at 120; with 10 s of lateness it is late from 130 on.
        (61.0, 61.0, False),
        (61.0, 119.999, False),
        (61.0, 129.999, False),
        (61.0, 130.0, True),  # exactly window end + lateness is late
        (61.0, 500.0, True),
        (119.999, 130.0, True),
        (120.0, 130.0, False),  # next window, closes at 180
        (120.0, 190.0, True),
        (61.0, 0.0, False),  # watermark behind the event
    ],
)
def test_is_late_with_lateness(event_time: float, watermark: float, late: bool) -> None:
    assert spec(window=60, lateness=10).is_late(event_time, watermark) is late


def test_is_late_without_lateness_boundary_is_window_end() -> None:
    s = spec(window=60, lateness=0)
    assert s.is_late(0.0, 59.999) is False
    assert s.is_late(0.0, 60.0) is True


@pytest.mark.parametrize("window", [0, -1, -60])
def test_non_positive_window_is_rejected(window: int) -> None:
    with pytest.raises(ValueError, match="window must be positive"):
        spec(window=window)


def test_negative_lateness_is_rejected() -> None:
    with pytest.raises(ValueError, match="allowed lateness must not be negative"):
        spec(lateness=-1)


def test_duplicate_feature_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="feature names must be unique"):
        ModelSpec("m", (NUM, FeatureSpec("x", FeatureKind.CATEGORICAL)), CAT_PRED, 60)


@pytest.mark.parametrize("edges", [(1.0,), (0.0, 0.0), (0.0, 2.0, 1.0), (3.0, 2.0)])
def test_feature_edges_must_be_strictly_increasing_and_at_least_two(
    edges: tuple[float, ...],
) -> None:
    with pytest.raises(ValueError, match=r"^x: "):
        FeatureSpec("x", FeatureKind.NUMERICAL, edges=edges)


@pytest.mark.parametrize("edges", [(1.0,), (0.0, 0.0), (1.0, 0.5)])
def test_prediction_edges_are_checked(edges: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match=r"^prediction: "):
        PredictionSpec(PredictionKind.NUMERICAL, edges)


def test_numerical_specs_default_to_default_edges() -> None:
    assert FeatureSpec("x", FeatureKind.NUMERICAL).edges == default_edges()
    assert PredictionSpec(PredictionKind.NUMERICAL).edges == default_edges()
    assert FeatureSpec("c", FeatureKind.CATEGORICAL).edges == ()
    assert PredictionSpec(PredictionKind.PROBABILITIES).edges == ()


def test_default_edges_are_symmetric_and_increasing() -> None:
    edges = default_edges()
    assert len(edges) == 2 * 61 + 1
    assert edges[61] == 0.0
    assert edges[62] == pytest.approx(1e-3)
    assert edges[-1] == pytest.approx(1e9)
    assert all(a < b for a, b in itertools.pairwise(edges))
    assert all(edges[i] == -edges[-1 - i] for i in range(len(edges)))


def test_feature_index_maps_names_to_specs() -> None:
    cat = FeatureSpec("c", FeatureKind.CATEGORICAL)
    s = ModelSpec("m", (NUM, cat), CAT_PRED, 60)
    assert s.feature_index == {"x": NUM, "c": cat}
