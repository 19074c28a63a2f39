"""Evidently 0.7's DataDriftPreset, run the way a user runs it, read back as plain verdicts.

Shared by the agreement tests and ``bench/drift_vs_evidently.py`` so both judge
driftwatch against the very same reading of Evidently's snapshot.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd

with warnings.catch_warnings():
    # Evidently's own imports warn about numpy and litestar deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    from evidently import Report
    from evidently.presets import DataDriftPreset


@dataclass(frozen=True)
class EvidentlyResult:
    drifted: dict[str, bool]
    method: dict[str, str]
    score: dict[str, float]
    dataset_drift: bool


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> EvidentlyResult:
    """Run the preset and read verdicts from the snapshot's tests, scores from its metrics."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            current_data=current, reference_data=reference
        )
    result = snapshot.dict()
    drifted: dict[str, bool] = {}
    dataset_drift = None
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        failed = test["status"] == "FAIL"
        if params["type"].endswith("ValueDrift"):
            drifted[params["column"]] = failed
        elif params["type"].endswith("DriftedColumnsCount"):
            dataset_drift = failed
    assert dataset_drift is not None, "no DriftedColumnsCount test in the snapshot"
    method, score = {}, {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            method[config["column"]] = config["method"]
            score[config["column"]] = float(metric["value"])
    return EvidentlyResult(drifted, method, score, dataset_drift)
