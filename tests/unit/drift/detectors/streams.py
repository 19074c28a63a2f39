"""Seeded error streams and the measurements every detector test makes on them.

The numbers the detectors' docstrings quote come from these functions: a
change from a 10 % to a 20 % error rate after 5,000 events, seeds 0-19, and
stationary Bernoulli(0.1) streams of 100,000 events, seeds 0-4.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from drift.detectors import Detector

CHANGE_AT = 5_000
DELAY_SEEDS = range(20)
STATIONARY_SEEDS = range(5)
STATIONARY_EVENTS = 100_000


def bernoulli(seed: int, n: int, p: float) -> list[int]:
    """``n`` seeded 0/1 errors with error rate ``p``."""
    errors: list[int] = (np.random.default_rng(seed).random(n) < p).astype(np.int64).tolist()
    return errors


def change(
    seed: int, before: float = 0.1, after: float = 0.2, pre: int = CHANGE_AT, post: int = 5_000
) -> list[int]:
    """0/1 errors whose rate jumps from ``before`` to ``after`` at index ``pre``."""
    rng = np.random.default_rng(seed)
    both = np.concatenate([rng.random(pre) < before, rng.random(post) < after])
    errors: list[int] = both.astype(np.int64).tolist()
    return errors


def drifts(detector: Detector, stream: Sequence[float]) -> list[int]:
    """Indices of the events at which ``detector`` reported a drift."""
    found = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    return found


def delay(detector: Detector, stream: Sequence[float], at: int = CHANGE_AT) -> int | None:
    """Events from the change up to and including the first drift reported after it."""
    after = [i for i in drifts(detector, stream) if i >= at]
    return after[0] - at + 1 if after else None


def delay_summary(make: Callable[[], Detector]) -> tuple[float, int]:
    """Median and maximum detection delay of fresh detectors on the 0.1 -> 0.2 change.

    One delay per delay seed; every seed must detect the change within the
    5,000 events after it.
    """
    found = [delay(make(), change(seed)) for seed in DELAY_SEEDS]
    missed = [seed for seed, d in zip(DELAY_SEEDS, found, strict=True) if d is None]
    assert not missed, f"no drift after the change for seeds {missed}"
    measured = [d for d in found if d is not None]
    return statistics.median(measured), max(measured)


def false_alarms(make: Callable[[], Detector]) -> list[list[int]]:
    """Where fresh detectors report drifts on the stationary Bernoulli(0.1) streams, by seed."""
    return [drifts(make(), bernoulli(seed, STATIONARY_EVENTS, 0.1)) for seed in STATIONARY_SEEDS]


def assert_resumes(
    make: Callable[[], Detector],
    restore: Callable[[dict[str, Any]], Detector],
    stream: Sequence[float],
    split: int,
) -> list[int]:
    """Check that a detector saved to JSON at ``split`` and restored behaves as one never stopped.

    Returns the indices of the drifts of the uninterrupted detector, so that a
    test can check that both halves exercised a drift.
    """
    whole, first = make(), make()
    found = drifts(whole, stream[:split])
    drifts(first, stream[:split])
    resumed = restore(json.loads(json.dumps(first.to_state(), allow_nan=False)))
    assert resumed.to_state() == whole.to_state()
    for i, x in enumerate(stream[split:], start=split):
        whole.update(x)
        resumed.update(x)
        assert (resumed.drift_detected, resumed.warning_detected, resumed.n) == (
            whole.drift_detected,
            whole.warning_detected,
            whole.n,
        ), f"diverged at event {i}"
        assert resumed.to_state() == whole.to_state(), f"state diverged at event {i}"
        if whole.drift_detected:
            found.append(i)
    return found
