"""What every canary check returns, and the argument checks they share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Outcome(StrEnum):
    """A check's verdict. ``INCONCLUSIVE`` means "not enough evidence either way":
    the rollout holds the step rather than reading noise as a verdict."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Check:
    """One canary check: its verdict, what was measured and against what.

    ``value`` is the headline measurement compared with ``threshold`` (a
    difference, a p-value, a distance or a ratio, as the check's docstring
    says); it is None only when there was nothing to measure. ``details``
    holds the other numbers (interval bounds, per-version figures, shares),
    every one finite or infinite but never NaN, so the whole check can be
    stored as JSON-compatible numbers. ``reason`` is one line that names them.

    >>> c = Check("toy", Outcome.PASS, 0.1, 0.2, 500, 480, "pass: 0.1 <= 0.2", {"x": 1.0})
    >>> c.outcome, c.details["x"]
    (<Outcome.PASS: 'pass'>, 1.0)
    """

    name: str
    outcome: Outcome
    value: float | None
    threshold: float
    n_canary: int
    n_stable: int
    reason: str
    details: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        numbers = [self.threshold, *self.details.values()]
        if self.value is not None:
            numbers.append(self.value)
        if any(math.isnan(x) for x in numbers):
            raise ValueError(f"check {self.name!r} carries a NaN: {self}")
        # A frozen check must not change through its mapping either.
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))


def check_alpha(alpha: float, name: str = "alpha") -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {alpha}")


def check_margin(margin: float) -> None:
    if not (math.isfinite(margin) and margin >= 0.0):
        raise ValueError(f"margin must be finite and >= 0, got {margin}")


def check_count(value: int, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def check_min_n(min_n: int, least: int = 1) -> None:
    if min_n < least:
        raise ValueError(f"min_n must be >= {least}, got {min_n}")
