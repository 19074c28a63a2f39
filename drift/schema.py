"""The shape of a monitored model: its features and its prediction.

These frozen records are what every other package agrees on; the service builds
them from validated configuration, the consumers decode events against them and
the sketches allocate their state from them.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class FeatureKind(StrEnum):
    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"


class PredictionKind(StrEnum):
    """How a model's ``prediction`` field is summarised.

    ``numerical`` covers regression outputs and binary scores, ``categorical``
    class labels, ``probabilities`` a list or mapping of class probabilities
    (summarised by its most probable class).
    """

    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    PROBABILITIES = "probabilities"


def default_edges() -> tuple[float, ...]:
    """Bin edges that work for any scale when nothing better is known.

    Symmetric, logarithmically spaced edges (five per decade from 1e-3 to 1e9)
    bound the relative error of every value at about 60% whatever its unit.
    Reference profiles replace them with quantile edges of the real data.
    """
    positive = np.logspace(-3, 9, num=12 * 5 + 1)
    edges = np.concatenate([-positive[::-1], [0.0], positive])
    return tuple(float(x) for x in edges)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    kind: FeatureKind
    nullable: bool = False
    edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind is FeatureKind.NUMERICAL:
            if not self.edges:
                object.__setattr__(self, "edges", default_edges())
            _check_edges(self.name, self.edges)


@dataclass(frozen=True, slots=True)
class PredictionSpec:
    kind: PredictionKind
    edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind is PredictionKind.NUMERICAL:
            if not self.edges:
                object.__setattr__(self, "edges", default_edges())
            _check_edges("prediction", self.edges)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A monitored model. Window and lateness are in seconds of event time.

    ``sample_size`` is how many whole events each window keeps as a row sample
    (0: none); it is not part of the layout because samples of any sizes merge.
    """

    name: str
    features: tuple[FeatureSpec, ...]
    prediction: PredictionSpec
    window_seconds: int
    allowed_lateness_seconds: int = 0
    sample_size: int = 0
    feature_index: dict[str, FeatureSpec] = field(init=False, repr=False, compare=False)
    layout: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.window_seconds <= 0:
            raise ValueError(f"model {self.name!r}: window must be positive")
        if self.sample_size < 0:
            raise ValueError(f"model {self.name!r}: sample size must not be negative")
        if self.allowed_lateness_seconds < 0:
            raise ValueError(f"model {self.name!r}: allowed lateness must not be negative")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name!r}: feature names must be unique")
        object.__setattr__(self, "feature_index", {f.name: f for f in self.features})
        object.__setattr__(self, "layout", _layout(self))

    def window_start(self, event_time: float) -> int:
        """Start (epoch seconds) of the tumbling window holding ``event_time``."""
        return int(event_time // self.window_seconds) * self.window_seconds

    @property
    def closes_after_seconds(self) -> int:
        """How long after its start a window stops taking events: its length plus lateness."""
        return self.window_seconds + self.allowed_lateness_seconds

    def is_late(self, event_time: float, watermark: float | None) -> bool:
        """True when the event's window closed before the event arrived."""
        if watermark is None:
            return False
        return self.window_start(event_time) + self.closes_after_seconds <= watermark


def _layout(spec: ModelSpec) -> str:
    """A fingerprint of what a window sketch of ``spec`` holds (features, kinds, bins).

    Sketches of different layouts cannot be merged, so stored window rows are
    keyed by it: changing bins mid-window starts new rows instead of failing.
    """
    parts = [
        f"{f.name}|{f.kind}|{f.nullable}|{','.join(map(repr, f.edges))}" for f in spec.features
    ]
    parts.append(f"prediction|{spec.prediction.kind}|{','.join(map(repr, spec.prediction.edges))}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _check_edges(name: str, edges: tuple[float, ...]) -> None:
    if len(edges) < 2:
        raise ValueError(f"{name}: at least two bin edges are needed")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"{name}: bin edges must be strictly increasing")
