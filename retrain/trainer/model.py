"""The task, its labels, and the metrics a model is judged by.

:func:`score` judges any model (the trainer's own, or a champion it did not
make) on the columns the model was fitted on and on labels of its classes'
dtype (:func:`labels_for`), so a champion trained on integer classes is
scored on integers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from retrain.errors import TrainerError

MISSING_CATEGORY = "__missing__"  # what a missing categorical value becomes


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


def targets(labels: pd.Series, task: Task) -> np.ndarray:
    """Labels as the estimator takes them: text classes, or floats for regression."""
    if task is Task.CLASSIFICATION:
        return labels.astype(str).to_numpy()
    try:
        return labels.astype(float).to_numpy()
    except ValueError as exc:
        raise TrainerError(f"regression labels must be numbers: {exc}") from exc


def labels_for(labels: pd.Series, task: Task, classes: Any = None) -> np.ndarray:
    """Labels as a model with ``classes`` takes them: in their dtype when it is numeric and
    every label parses so (a model trained on integer classes stays one), else text."""
    y = targets(labels, task)
    if task is Task.REGRESSION or classes is None:
        return y
    kind = np.asarray(classes).dtype
    if kind.kind not in "iuf":
        return y
    try:
        numbers = pd.to_numeric(pd.Series(y), errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError):
        return y
    if kind.kind in "iu" and not np.all(np.isfinite(numbers) & (numbers == np.round(numbers))):
        return y
    return numbers.astype(kind)


def score(model: Any, task: Task, frame: pd.DataFrame, features: Sequence[str]) -> dict[str, float]:
    """The task's metrics of ``model`` on ``frame``; a metric that is undefined is left out.

    The model sees the columns it was fitted on (``feature_names_in_``) when it knows
    them, else ``features``; labels are compared in the dtype of its classes.
    """
    named = getattr(model, "feature_names_in_", None)
    columns = [str(n) for n in named] if named is not None else list(features)
    try:
        y = labels_for(frame["label"], task, getattr(model, "classes_", None))
        x = frame[columns]
        if task is Task.REGRESSION:
            predicted = np.asarray(model.predict(x), dtype=float)
            return _finite(
                mae=mean_absolute_error(y, predicted),
                rmse=math.sqrt(mean_squared_error(y, predicted)),
                r2=r2_score(y, predicted) if len(y) > 1 else math.nan,
            )
        classes = list(np.asarray(model.classes_).tolist())
        proba = np.asarray(model.predict_proba(x), dtype=float)
        predicted = np.asarray(model.classes_)[proba.argmax(axis=1)]
    except (KeyError, ValueError, AttributeError, TypeError) as exc:
        raise TrainerError(f"cannot score the model: {exc}") from exc
    metrics = {"accuracy": float(accuracy_score(y, predicted))}
    seen = set(y)
    if seen <= set(classes):
        metrics["log_loss"] = float(log_loss(y, proba, labels=classes))
    if len(classes) == 2 and len(seen) == 2 and seen <= set(classes):
        metrics["roc_auc"] = float(roc_auc_score(y == classes[1], proba[:, 1]))
    return _finite(**metrics)


def _finite(**metrics: float) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items() if math.isfinite(v)}
