"""Per-event errors that the streaming detectors watch, each in [0, 1].

A classifier's error is the 0/1 loss: 1 when the predicted class is not the
actual one. A regression has no natural bound, so its loss is the absolute
error in units of a scale fixed up front, clipped at 1:

    loss = min(|actual - predicted| / scale, 1),  scale = 3 * sqrt(reference MSE).

Why this one: the detectors need values in [0, 1] (ADWIN's bound assumes
them) whose mean rises when the model gets worse, with the same meaning on
every replica and after every restart, so the scale comes from the model's
configured reference, never from the stream. Three reference RMSEs keep the
loss linear for nearly all events of a healthy model: for normal errors of
the reference's size the clip touches 0.27 % of them and the mean loss is
``sqrt(2 / pi) / 3 = 0.266``. If the errors grow by half, the mean goes to
0.39; if they double, to 0.49 (the clip then holds the heavier tail in, so
one wild prediction moves the mean by at most 1 / n). The absolute error,
rather than the squared one, keeps the variance of the loss low, so a given
rise is detected on fewer events.

>>> zero_one_loss("1", "1"), zero_one_loss("0", "1"), zero_one_loss(None, "1")
(0.0, 1.0, 1.0)
>>> scale = regression_scale(4.0)  # reference MSE 4: RMSE 2, scale 6
>>> scale
6.0
>>> clipped_absolute_loss(10.0, 13.0, scale), clipped_absolute_loss(10.0, -20.0, scale)
(0.5, 1.0)
"""

from __future__ import annotations

import math

REGRESSION_SCALE_RMSES = 3.0


def zero_one_loss(predicted: str | None, actual: str) -> float:
    """1.0 when the predicted class is not the actual one (or is unknown), else 0.0."""
    return 0.0 if predicted == actual else 1.0


def regression_scale(reference_mse: float, rmses: float = REGRESSION_SCALE_RMSES) -> float:
    """The loss scale of a regression: ``rmses`` times the reference RMSE."""
    if not reference_mse >= 0 or not math.isfinite(reference_mse):
        raise ValueError(f"reference MSE must be a finite non-negative number, got {reference_mse}")
    if rmses <= 0:
        raise ValueError(f"rmses must be positive, got {rmses}")
    return rmses * math.sqrt(reference_mse)


def clipped_absolute_loss(predicted: float, actual: float, scale: float) -> float:
    """``min(|actual - predicted| / scale, 1)``; with a zero scale, any error is 1.

    >>> clipped_absolute_loss(1.0, 1.0, 0.0), clipped_absolute_loss(1.0, 1.5, 0.0)
    (0.0, 1.0)
    """
    error = abs(actual - predicted)
    if not math.isfinite(error):
        return 1.0
    if scale <= 0:
        return 0.0 if error == 0 else 1.0
    return min(error / scale, 1.0)
