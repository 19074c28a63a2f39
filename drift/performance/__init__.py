"""Mergeable, serialisable summaries of model performance once labels arrive.

A :class:`ClassificationSketch` keeps a confusion matrix over class labels
(compared as text), histograms of the positive-class score for actual
positives and negatives, the log-loss sum and calibration bins; a
:class:`RegressionSketch` keeps error moments and an error histogram.
:class:`PerformanceSketch` wraps either one, chosen by task, and owns the
versioned bytes. As with :mod:`drift.sketch`, merging the sketches of two
partitions gives the sketch of both fed in sequence (counts exactly, float sums
up to rounding). The metric functions return None wherever a metric is
undefined.

Scores are the model's probability of ``positive_label`` (default ``"1"``):
ROC AUC, log loss and calibration are about that class against all others, so
on a multiclass problem they are its one-vs-rest figures.

>>> a = PerformanceSketch.empty("classification")
>>> a.update(["1", "0", "1"], ["1", "0", "0"], [0.9, 0.2, 0.4])
>>> b = PerformanceSketch.empty(Task.CLASSIFICATION)
>>> b.update(["0"], ["1"], [None])
>>> a.merge(b)
>>> m = a.metrics()
>>> m.n, m.accuracy, m.recall, m.roc_auc
(4, 0.5, 0.5, 1.0)
>>> PerformanceSketch.from_bytes(a.to_bytes()) == a
True
>>> r = PerformanceSketch.empty("regression")
>>> r.update([1.0, 2.0, 0.0], [1.5, 1.0, 0.5])
>>> r.metrics().mae, r.metrics().mape
(0.6666666666666666, 0.5)
"""

from drift.performance.base import (
    DEFAULT_ERROR_EDGES,
    LOG_LOSS_EPS,
    Average,
    PerformanceMetrics,
    Task,
    symmetric_edges,
)
from drift.performance.classification import (
    ClassificationSketch,
    accuracy,
    calibration_error,
    f1,
    log_loss,
    precision,
    recall,
    roc_auc,
)
from drift.performance.regression import RegressionSketch, mae, mape, rmse
from drift.performance.sketch import PerformanceSketch, Sketch

__all__ = [
    "DEFAULT_ERROR_EDGES",
    "LOG_LOSS_EPS",
    "Average",
    "ClassificationSketch",
    "PerformanceMetrics",
    "PerformanceSketch",
    "RegressionSketch",
    "Sketch",
    "Task",
    "accuracy",
    "calibration_error",
    "f1",
    "log_loss",
    "mae",
    "mape",
    "precision",
    "recall",
    "rmse",
    "roc_auc",
    "symmetric_edges",
]
