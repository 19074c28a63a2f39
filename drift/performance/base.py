"""What the classification and regression sketches share: task, metrics, decoding."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

LOG_LOSS_EPS = 1e-15
Average = Literal["binary", "macro"]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


def symmetric_edges(magnitudes: Sequence[float]) -> tuple[float, ...]:
    """Histogram edges ``-m_k, ..., -m_1, 0, m_1, ..., m_k`` from positive magnitudes.

    >>> symmetric_edges([1.0, 0.5])
    (-1.0, -0.5, 0.0, 0.5, 1.0)
    """
    mags = sorted({float(m) for m in magnitudes})
    if not mags or mags[0] <= 0 or not math.isfinite(mags[-1]):
        raise ValueError("magnitudes must be positive finite numbers")
    return (*(-m for m in reversed(mags)), 0.0, *mags)


# The scale of a target is not known up front, so the default spans 1e-3 to 5e6
# at 1-2-5 steps: relative resolution holds for small and large errors alike.
DEFAULT_ERROR_EDGES = symmetric_edges([m * 10.0**k for k in range(-3, 7) for m in (1, 2, 5)])


def labels(values: Sequence[Any]) -> list[str | None]:
    # 1 and "1" must be one class, whichever way the label topic encoded it.
    return [v if v is None or type(v) is str else str(v) for v in values]


def counts(values: Any, size: int) -> IntArray:
    if len(values) != size or any(type(v) is not int or v < 0 for v in values):
        raise ValueError(f"expected {size} non-negative integer counts")
    return np.array(values, dtype=np.int64)


def floats(values: Any, size: int) -> FloatArray:
    if len(values) != size:
        raise ValueError(f"expected {size} floats")
    return np.array([float(v) for v in values], dtype=np.float64)


DECODE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass(frozen=True, slots=True)
class PerformanceMetrics:
    """Every metric of one sketch; None where undefined or not of this task."""

    task: Task
    n: int
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    macro_precision: float | None = None
    macro_recall: float | None = None
    macro_f1: float | None = None
    roc_auc: float | None = None
    log_loss: float | None = None
    calibration_error: float | None = None
    rmse: float | None = None
    mae: float | None = None
    mape: float | None = None
    mean_error: float | None = None
