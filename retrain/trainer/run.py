"""The reference trainer's two modes, driven by the environment contract.

``train``: fit the pipeline on the training rows, score it on the holdout,
save it as ``{DRIFTWATCH_OUTPUT_URI}/model.skops`` and report where it is.
``validate``: load champion and candidate (sha256 first), score both on the
same holdout, overall and per value of ``DRIFTWATCH_SLICE_FEATURE``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retrain.artifacts import load_model, save_model
from retrain.errors import TrainerError
from retrain.trainer.data import Dataset, read_labeled, split_by_time
from retrain.trainer.model import Task, fit, score

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


def train(contract: Contract) -> dict[str, Any]:
    data_uri = contract.get("DRIFTWATCH_DATA_URI")
    data = read_labeled(data_uri)
    split = split_by_time(data.frame, contract.holdout_share)
    task = contract.task
    model = fit(task, split.train, data.numerical, data.categorical)
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
    }


def validate(contract: Contract) -> dict[str, Any]:
    # Artifacts first: a tampered model is refused before any data is read. A champion
    # that was not made by this trainer may need types of its own, named by the operator.
    extra = contract.env.get("DRIFTWATCH_TRUSTED_TYPES", "")
    trusted = [name.strip() for name in extra.split(",") if name.strip()]
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
