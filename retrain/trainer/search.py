"""An optional hyperparameter search around the estimator's own values, within a time budget.

Successive halving (``HalvingRandomSearchCV``, fixed seed) over the known
numeric hyperparameters the final step has, each drawn around its current
value. Candidates train on the earlier 80% of the training rows and are
judged on the later 20% (time order, as the holdout is), since a model is
always used on rows newer than those it learned from.

The budget is kept by construction: one fit of the base estimator on the
earlier rows is timed first; with ``k`` rounds and ``3**(k-1)`` candidates,
each round costs about one such fit (three times fewer candidates on three
times more rows), so ``k`` is what the rest of the budget affords after the
final refit. The base estimator's own score competes with the best
candidate: the search never replaces it with something worse on the later
rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import loguniform, randint  # type: ignore[import-untyped, unused-ignore]
from sklearn.base import clone, is_classifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (enables the import)
from sklearn.metrics import get_scorer
from sklearn.model_selection import HalvingRandomSearchCV, PredefinedSplit
from sklearn.pipeline import Pipeline

from retrain.errors import TrainerError
from retrain.trainer.estimators import RANDOM_STATE, final_step, fit_estimator, one_line

FACTOR = 3
MAX_ROUNDS = 4  # at most 27 candidates: a small search
MIN_ROUNDS = 2
MIN_ROWS = 200  # the fewest rows a candidate of the first round trains on
VALIDATION_SHARE = 0.2


@dataclass
class Outcome:
    """The estimator to refit on every training row, and what the search did."""

    estimator: Any
    record: dict[str, Any] = field(default_factory=dict)


def distributions(estimator: Any) -> dict[str, Any]:
    """Distributions around the final step's current values of the hyperparameters known here."""
    step = final_step(estimator)
    prefix = ""
    if isinstance(estimator, Pipeline):
        # Parameters of a nested final step are reached through every pipeline on the way.
        names = []
        node: Any = estimator
        while isinstance(node, Pipeline):
            names.append(node.steps[-1][0])
            node = node.steps[-1][1]
        prefix = "__".join(names) + "__"
    params = step.get_params(deep=False)
    found: dict[str, Any] = {}
    for name, value in params.items():
        space = _around(name, value)
        if space is not None:
            found[prefix + name] = space
    return found


def _around(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if name in ("max_iter", "n_estimators", "max_leaf_nodes", "min_samples_leaf"):
        if not isinstance(value, int) or value < 1:
            return None
        return randint(max(2 if name == "max_leaf_nodes" else 1, value // 2), 2 * value + 1)
    if name == "max_depth":
        return randint(max(1, int(value) - 2), int(value) + 3) if isinstance(value, int) else None
    if name == "learning_rate" and value > 0:
        return loguniform(value / 3, min(1.0, value * 3))
    if name == "l2_regularization":
        return loguniform(value / 10, value * 10) if value > 0 else loguniform(1e-4, 1.0)
    if name in ("C", "alpha") and value > 0:
        return loguniform(value / 10, value * 10)
    return None


def search(
    estimator: Any,
    x: pd.DataFrame,
    y: np.ndarray,
    budget: float,
    clock: Callable[[], float] = time.perf_counter,
) -> Outcome:
    """Search around ``estimator`` on the time-ordered rows ``x``/``y`` within ``budget`` s."""
    started = clock()
    spaces = distributions(estimator)
    if not spaces:
        return _skip(estimator, budget, "no known hyperparameter to search")
    cut = len(x) - math.ceil(len(x) * VALIDATION_SHARE)
    if cut < MIN_ROWS * FACTOR ** (MIN_ROUNDS - 1):
        return _skip(estimator, budget, f"{len(x)} rows are too few to search")
    if is_classifier(estimator) and len(set(y[:cut].tolist())) < 2:
        return _skip(estimator, budget, "the earlier rows hold one class only")
    scoring = "neg_log_loss" if is_classifier(estimator) else "neg_mean_squared_error"
    base = clone(estimator)
    timed = clock()
    fit_estimator(base, x.iloc[:cut], y[:cut])
    one_fit = max(clock() - timed, 1e-9)
    base_score = _score(base, scoring, x.iloc[cut:], y[cut:])
    # Each round costs about one fit on the earlier rows; the final refit on every row
    # costs about one more.
    left = budget - (clock() - started)
    rounds = min(MAX_ROUNDS, int(left / one_fit) - 1, _rounds_for(cut))
    if rounds < MIN_ROUNDS:
        return _skip(
            estimator,
            budget,
            f"one fit takes {one_fit:.3g} s: {MIN_ROUNDS} rounds and the refit "
            f"do not fit in the {left:.3g} s left of {budget:g} s",
        )
    candidates = FACTOR ** (rounds - 1)
    halving = HalvingRandomSearchCV(
        clone(estimator),
        spaces,
        n_candidates=candidates,
        factor=FACTOR,
        resource="n_samples",
        min_resources=len(x) // candidates,
        max_resources=len(x),
        cv=PredefinedSplit(np.where(np.arange(len(x)) < cut, -1, 0)),
        scoring=scoring,
        refit=False,
        random_state=RANDOM_STATE,
        n_jobs=1,
        error_score=np.nan,
    )
    try:
        halving.fit(x, y)
    except ValueError as exc:
        raise TrainerError(f"the search failed: {one_line(exc)}") from exc
    best_score = float(halving.best_score_)
    improved = math.isfinite(best_score) and best_score > base_score
    chosen = clone(estimator).set_params(**halving.best_params_) if improved else estimator
    record = {
        "budget": budget,
        "seconds": round(clock() - started, 2),
        "scoring": scoring,
        "rounds": rounds,
        "candidates": candidates,
        "base_score": _rounded(base_score),
        "best_score": _rounded(best_score),
        "kept": "best" if improved else "base",
    }
    if improved:
        record["best"] = {k.rsplit("__", 1)[-1]: _plain(v) for k, v in halving.best_params_.items()}
    return Outcome(chosen, record)


def _rounds_for(rows: int) -> int:
    """The most rounds whose first one still trains on ``MIN_ROWS`` earlier rows."""
    return 1 + int(math.log(max(1, rows // MIN_ROWS), FACTOR) + 1e-9)


def _score(model: Any, scoring: str, x: pd.DataFrame, y: np.ndarray) -> float:
    try:
        return float(get_scorer(scoring)(model, x, y))
    except ValueError:
        return -math.inf  # a later class the earlier rows lack: any candidate may do better


def _skip(estimator: Any, budget: float, why: str) -> Outcome:
    return Outcome(estimator, {"budget": budget, "skipped": why})


def _rounded(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return float(f"{value:.6g}") if isinstance(value, float) else value
