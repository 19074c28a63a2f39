"""The reference trainer's two modes, driven by the environment contract.

``train``: choose the estimator (a clone of the champion, or the default),
optionally search around its hyperparameters, fit it on the training rows,
score it on the holdout, save it as ``{DRIFTWATCH_OUTPUT_URI}/model.skops``
and report where it is and what was fitted.
``validate``: load champion and candidate (sha256 first), score both on the
same holdout, overall and per value of ``DRIFTWATCH_SLICE_FEATURE``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retrain.artifacts import load_model, save_model
from retrain.errors import TrainerError
from retrain.trainer.data import Dataset, read_labeled, split_by_time
from retrain.trainer.estimators import (
    Choice,
    default_choice,
    fit_estimator,
    is_estimator,
    qualified,
    refit_choice,
    scalar_params,
)
from retrain.trainer.model import Task, labels_for, score
from retrain.trainer.search import search

TRAINER = "driftwatch-reference/1"
RESULT_LIMIT_BYTES = 4096
NULL_SLICE = "<null>"
MAX_SLICES = 10  # the largest slices; all of them might not fit in 4096 bytes


@dataclass(frozen=True)
class Contract:
    """The job's environment, read once and checked."""

    env: Mapping[str, str]

    def get(self, key: str, default: str | None = None) -> str:
        value = self.env.get(key, default)
        if value is None or value == "":
            raise TrainerError(f"{key} is not set")
        return value

    @property
    def task(self) -> Task:
        value = self.get("DRIFTWATCH_TASK", Task.CLASSIFICATION.value)
        try:
            return Task(value)
        except ValueError:
            raise TrainerError(
                f"DRIFTWATCH_TASK must be classification or regression, got {value!r}"
            ) from None

    @property
    def holdout_share(self) -> float:
        value = self.get("DRIFTWATCH_HOLDOUT_SHARE", "0.2")
        try:
            return float(value)
        except ValueError:
            raise TrainerError(
                f"DRIFTWATCH_HOLDOUT_SHARE must be a number, got {value!r}"
            ) from None

    @property
    def trusted_types(self) -> list[str]:
        """Types a champion not made by this trainer needs, named by the operator."""
        extra = self.env.get("DRIFTWATCH_TRUSTED_TYPES", "")
        return [name.strip() for name in extra.split(",") if name.strip()]

    @property
    def estimator(self) -> str:
        value = self.env.get("DRIFTWATCH_ESTIMATOR") or "champion"
        if value not in ("champion", "default"):
            raise TrainerError(f"DRIFTWATCH_ESTIMATOR must be champion or default, got {value!r}")
        return value

    @property
    def search_seconds(self) -> float:
        value = self.env.get("DRIFTWATCH_SEARCH_SECONDS") or "0"
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0:
            raise TrainerError(
                f"DRIFTWATCH_SEARCH_SECONDS must be a number of seconds >= 0, got {value!r}"
            )
        return seconds

    def champion(self) -> Any:
        """The production model (sha256 checked, trusted types only), or None if not given."""
        uri = self.env.get("DRIFTWATCH_CHAMPION_URI", "")
        if not uri:
            return None
        return load_model(uri, self.get("DRIFTWATCH_CHAMPION_SHA256"), self.trusted_types)


def train(contract: Contract) -> dict[str, Any]:
    task, mode, budget = contract.task, contract.estimator, contract.search_seconds
    # The champion first, as in validate: a tampered artifact is refused before any data.
    champion = contract.champion() if mode == "champion" else None
    data = read_labeled(contract.get("DRIFTWATCH_DATA_URI"))
    split = split_by_time(data.frame, contract.holdout_share)
    choice = _choose(mode, champion, task, data, len(split.train))
    x = split.train[choice.columns]
    y = labels_for(split.train["label"], task, choice.classes)
    model, searched = choice.estimator, None
    if budget > 0:
        outcome = search(model, x, y, budget)
        model, searched = outcome.estimator, outcome.record
    seconds = fit_estimator(model, x, y)
    metrics = score(model, task, split.holdout, data.features)
    output = contract.get("DRIFTWATCH_OUTPUT_URI").rstrip("/")
    uri, sha256 = save_model(model, f"{output}/model.skops")
    times = data.frame["event_time"]
    return {
        "model_uri": uri,
        "sha256": sha256,
        "metrics": metrics,
        "rows": {"train": len(split.train), "holdout": len(split.holdout)},
        "data_range": {"from": _iso(times.iloc[0]), "to": _iso(times.iloc[-1])},
        "trainer": TRAINER,
        "fitted": fitted_record(choice, model, len(split.train), seconds, searched),
    }


def _choose(mode: str, champion: Any, task: Task, data: Dataset, rows: int) -> Choice:
    if mode == "default":
        why = "DRIFTWATCH_ESTIMATOR is default"
    elif champion is None:
        why = "no champion was given (DRIFTWATCH_CHAMPION_URI is not set)"
    elif not is_estimator(champion):
        kind = f"{type(champion).__module__}.{type(champion).__qualname__}"
        why = f"the champion is a {kind}, not a scikit-learn estimator"
    else:
        return refit_choice(champion, task, data.features)
    return default_choice(task, data.numerical, data.categorical, rows, why)


def fitted_record(
    choice: Choice, model: Any, rows: int, seconds: float, searched: dict[str, Any] | None
) -> dict[str, Any]:
    """What was fitted, for the result and the registry (kept under ~1 KB)."""
    params, omitted = scalar_params(model)
    record: dict[str, Any] = {"estimator": qualified(model), "source": choice.source}
    if choice.why:
        record["why"] = choice.why
    record["params"] = params
    if omitted:
        record["params_omitted"] = omitted
    record.update(rows=rows, seconds=round(seconds, 2))
    if searched is not None:
        record["search"] = searched
    return record


def validate(contract: Contract) -> dict[str, Any]:
    # Artifacts first: a tampered model is refused before any data is read. A champion
    # that was not made by this trainer may need types of its own, named by the operator.
    trusted = contract.trusted_types
    champion = load_model(
        contract.get("DRIFTWATCH_CHAMPION_URI"), contract.get("DRIFTWATCH_CHAMPION_SHA256"), trusted
    )
    candidate = load_model(
        contract.get("DRIFTWATCH_CANDIDATE_URI"),
        contract.get("DRIFTWATCH_CANDIDATE_SHA256"),
        trusted,
    )
    data = read_labeled(contract.get("DRIFTWATCH_DATA_URI"))
    holdout = split_by_time(data.frame, contract.holdout_share).holdout
    slice_feature = contract.env.get("DRIFTWATCH_SLICE_FEATURE") or None
    if slice_feature is not None and slice_feature not in data.categorical:
        raise TrainerError(
            f"DRIFTWATCH_SLICE_FEATURE {slice_feature!r} is not a categorical feature "
            f"(have {', '.join(data.categorical) or 'none'})"
        )
    task = contract.task
    return {
        "holdout_rows": len(holdout),
        "champion": _judge(champion, task, holdout, data, slice_feature),
        "candidate": _judge(candidate, task, holdout, data, slice_feature),
    }


def _judge(
    model: Any, task: Task, holdout: pd.DataFrame, data: Dataset, slice_feature: str | None
) -> dict[str, Any]:
    slices: dict[str, Any] = {}
    if slice_feature is not None:
        values = holdout[slice_feature].fillna(NULL_SLICE).astype(str)
        for value in values.value_counts().index[:MAX_SLICES]:
            rows = holdout[values == value]
            slices[str(value)] = {
                "rows": len(rows),
                "metrics": score(model, task, rows, data.features),
            }
    return {"metrics": score(model, task, holdout, data.features), "slices": slices}


def encode_result(result: dict[str, Any]) -> bytes:
    """The result as compact JSON; the smallest slices go if it would pass 4096 bytes."""
    while True:
        data = json.dumps(result, separators=(",", ":"), allow_nan=False).encode()
        if len(data) <= RESULT_LIMIT_BYTES:
            return data
        slices = [r["slices"] for r in (result.get("champion"), result.get("candidate")) if r]
        if not slices or not slices[0]:
            raise TrainerError(f"the result is {len(data)} bytes, more than {RESULT_LIMIT_BYTES}")
        smallest = min(slices[0], key=lambda v: slices[0][v]["rows"])
        for per_model in slices:
            per_model.pop(smallest, None)


def write_result(path: str, result: dict[str, Any]) -> None:
    data = encode_result(result)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)  # a reader never sees half a result
    except OSError as exc:
        raise TrainerError(f"cannot write the result to {path}: {exc}") from exc


def _iso(value: Any) -> str:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return str(stamp.tz_convert("UTC").isoformat()).replace("+00:00", "Z")
