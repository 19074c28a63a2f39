"""What the trainer fits: a clone of the champion, or the default gradient-boosting pipeline.

The champion is refitted when it is a scikit-learn estimator: ``clone`` keeps
its pipeline, preprocessing and hyperparameters and drops what it learned. It
is trained on exactly the columns it was fitted on (``feature_names_in_``)
and, for classification, on labels of its own classes' dtype, so a model
trained on integer classes stays one.

The default, used when asked, when no champion is given or when the champion
is not a scikit-learn estimator, is non-linear: histogram gradient boosting
with native categorical support. Numerical columns pass through (missing
values have a bin of their own); a missing category is a category, an
unknown one at scoring time becomes the missing bin. Every type its skops
file names is in :data:`retrain.artifacts.TRUSTED_TYPES`. Measured with
4,000 training rows: on the concept demo's logistic concept, the case least
suited to trees, it recovers 0.978-0.982 of the pre-drift accuracy (seeds 7,
11, 23; the demo's linear pipeline 0.99); on an interaction of two signs and a
category, 0.998 accuracy where a linear model stays near 0.5
(``tests/unit/retrain/test_trainer_default.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from retrain.errors import TrainerError
from retrain.trainer.model import MISSING_CATEGORY, Task

RANDOM_STATE = 0
# Histogram gradient boosting bins a categorical feature into at most max_bins (255)
# codes; the rarest categories beyond this share one code instead of failing the fit.
MAX_CATEGORIES = 250
# Below this many rows a held-out early-stopping set is too small to trust: a fixed
# number of iterations is steadier.
EARLY_STOPPING_ROWS = 2_000
PARAMS_BYTES = 600  # the fitted record stays under ~1 KB, the result under 4096 bytes


@dataclass(frozen=True)
class Choice:
    """The unfitted estimator to train, on which columns, with labels like which classes."""

    estimator: Any
    columns: list[str]
    classes: Any = None  # the champion's classes_: their dtype is the labels' dtype
    source: str = "default"  # or "champion"
    why: str = ""  # why the default was used instead of the champion


def default_pipeline(
    task: Task, numerical: Sequence[str], categorical: Sequence[str], rows: int
) -> Pipeline:
    """Histogram gradient boosting behind a column transformer, reproducible (fixed seed)."""
    parts: list[tuple[str, Any, list[str]]] = []
    if numerical:
        parts.append(("numerical", "passthrough", list(numerical)))
    if categorical:
        # pandas marks a missing text value as NaN or None depending on the source; both
        # imputers together make either one the same category of its own.
        encode = make_pipeline(
            SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
            SimpleImputer(missing_values=None, strategy="constant", fill_value=MISSING_CATEGORY),
            OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                max_categories=MAX_CATEGORIES,
            ),
        )
        parts.append(("categorical", encode, list(categorical)))
    # The column transformer puts the numerical columns first, then the categorical ones.
    codes = list(range(len(numerical), len(numerical) + len(categorical)))
    # Small trees, a small step and L2 shrinkage: a smooth concept (a logistic one, say)
    # is then learnt almost as well as by a linear model, while interactions still are.
    settings: dict[str, Any] = {
        "categorical_features": codes or None,
        "learning_rate": 0.05,
        "max_leaf_nodes": 8,
        "l2_regularization": 1.0,
        "random_state": RANDOM_STATE,
    }
    if rows >= EARLY_STOPPING_ROWS:
        settings.update(
            early_stopping=True,
            max_iter=1_000,
            validation_fraction=0.15,
            n_iter_no_change=20,
            min_samples_leaf=40,
        )
    else:
        # Few rows: fewer, larger steps and smaller leaves, or the trees stay too coarse.
        settings.update(early_stopping=False, learning_rate=0.1, max_iter=300, min_samples_leaf=10)
    booster: Any = (
        HistGradientBoostingClassifier(**settings)
        if task is Task.CLASSIFICATION
        else HistGradientBoostingRegressor(**settings)
    )
    return Pipeline([("features", ColumnTransformer(parts)), ("model", booster)])


def is_estimator(model: Any) -> bool:
    return isinstance(model, BaseEstimator) and callable(getattr(model, "get_params", None))


def default_choice(
    task: Task, numerical: Sequence[str], categorical: Sequence[str], rows: int, why: str
) -> Choice:
    pipeline = default_pipeline(task, numerical, categorical, rows)
    return Choice(pipeline, [*numerical, *categorical], why=why)


def refit_choice(champion: Any, task: Task, features: Sequence[str]) -> Choice:
    """The champion, unfitted, if it can be refitted for ``task`` on the exported columns."""
    kind = (
        "a classifier"
        if is_classifier(champion)
        else "a regressor"
        if is_regressor(champion)
        else "neither a classifier nor a regressor"
    )
    expected = "a classifier" if task is Task.CLASSIFICATION else "a regressor"
    if kind != expected:
        raise TrainerError(
            f"the champion ({qualified(champion)}) is {kind}, but DRIFTWATCH_TASK is {task}"
        )
    needed = columns(champion, features)
    try:
        estimator = clone(champion)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TrainerError(
            f"cannot clone the champion ({qualified(champion)}): {one_line(exc)}"
        ) from exc
    return Choice(estimator, needed, getattr(champion, "classes_", None), "champion")


def columns(champion: Any, features: Sequence[str]) -> list[str]:
    """The input columns: those the champion was fitted on, else every exported feature."""
    named = getattr(champion, "feature_names_in_", None)
    if named is None:
        return list(features)
    wanted = [str(n) for n in named]
    missing = [n for n in wanted if n not in set(features)]
    if missing:
        raise TrainerError(
            f"the champion needs the column(s) {', '.join(missing)}, "
            f"which the export lacks (it has {', '.join(features) or 'none'})"
        )
    return wanted


def fit_estimator(estimator: Any, x: pd.DataFrame, y: np.ndarray) -> float:
    """Fit ``estimator`` in place; return the seconds it took."""
    labels = y.tolist()
    if is_classifier(estimator) and len(set(labels)) < 2:
        raise TrainerError(f"the training rows hold one class only ({labels[0]!r})")
    started = time.perf_counter()
    try:
        estimator.fit(x, y)
    except (ValueError, TypeError, KeyError, IndexError, ArithmeticError) as exc:
        raise TrainerError(f"fitting {qualified(estimator)} failed: {one_line(exc)}") from exc
    return time.perf_counter() - started


def one_line(exc: BaseException) -> str:
    """The error's message on one line: a job's failure is one line on stderr, and
    scikit-learn's messages often span several."""
    return " ".join(str(exc).split())


def final_step(estimator: Any) -> Any:
    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def qualified(obj: Any) -> str:
    kind = type(final_step(obj))
    return f"{kind.__module__}.{kind.__qualname__}"


def scalar_params(estimator: Any) -> tuple[dict[str, Any], int]:
    """The final step's scalar parameters that fit in the record, and how many were left out."""
    params = final_step(estimator).get_params(deep=False)
    kept: dict[str, Any] = {}
    omitted = 0
    size = 2
    for name in sorted(params):
        value = _scalar(params[name])
        if value is _NOT_SCALAR:
            continue
        entry = len(repr(name)) + len(repr(value)) + 4
        if size + entry > PARAMS_BYTES:
            omitted += 1
            continue
        kept[name] = value
        size += entry
    return kept, omitted


_NOT_SCALAR = object()


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value[:60] if isinstance(value, str) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return _NOT_SCALAR
