"""Validation gates on seeded validation results, with exact expectations."""

from __future__ import annotations

from typing import Any

import pytest

from retrain.errors import MalformedResult
from retrain.gates import GateSettings, MetricGate, Verdict, judge


def result(
    champion: dict[str, float],
    candidate: dict[str, float],
    holdout: int = 1000,
    slices: dict[str, tuple[dict[str, float], dict[str, float]]] | None = None,
) -> dict[str, Any]:
    slices = slices or {}
    return {
        "holdout_rows": holdout,
        "champion": {
            "metrics": champion,
            "slices": {k: {"rows": 100, "metrics": v[0]} for k, v in slices.items()},
        },
        "candidate": {
            "metrics": candidate,
            "slices": {k: {"rows": 100, "metrics": v[1]} for k, v in slices.items()},
        },
    }


ACCURACY = GateSettings((MetricGate("accuracy", min_delta=0.0),), min_holdout=200)


def test_a_better_candidate_passes_every_gate_and_each_is_recorded() -> None:
    j = judge(ACCURACY, result({"accuracy": 0.70}, {"accuracy": 0.84}))
    assert j.verdict is Verdict.ACCEPTED
    assert [
        (r.gate, r.metric, r.champion, r.candidate, r.threshold, r.passed) for r in j.results
    ] == [
        ("min_holdout", None, None, 1000.0, 200.0, True),
        ("min_delta", "accuracy", 0.70, 0.84, 0.0, True),
    ]
    assert j.reason() == "all 2 gates passed"


def test_a_worse_candidate_is_rejected_with_the_values_in_the_reason() -> None:
    j = judge(ACCURACY, result({"accuracy": 0.80}, {"accuracy": 0.79}))
    assert j.verdict is Verdict.REJECTED
    assert j.reason() == ("min_delta accuracy: champion 0.8000, candidate 0.7900, threshold 0")


def test_a_small_holdout_rejects_even_a_better_candidate() -> None:
    j = judge(ACCURACY, result({"accuracy": 0.5}, {"accuracy": 0.9}, holdout=199))
    assert j.verdict is Verdict.REJECTED
    assert [r.gate for r in j.failed] == ["min_holdout"]
    assert (
        j.reason() == "min_holdout holdout rows: champion unmeasured, candidate 199, threshold 200"
    )


def test_lower_is_better_metrics_are_judged_in_their_direction() -> None:
    gates = GateSettings(
        (MetricGate("log_loss", max_degradation=0.01), MetricGate("mae", min_delta=0.5)),
        min_holdout=1,
    )
    j = judge(gates, result({"log_loss": 0.40, "mae": 3.0}, {"log_loss": 0.405, "mae": 2.5}))
    assert j.verdict is Verdict.ACCEPTED
    j = judge(gates, result({"log_loss": 0.40, "mae": 3.0}, {"log_loss": 0.42, "mae": 2.6}))
    assert [(r.gate, r.metric) for r in j.failed] == [
        ("max_degradation", "log_loss"),
        ("min_delta", "mae"),
    ]


def test_an_unmeasured_metric_fails_its_gate() -> None:
    gates = GateSettings((MetricGate("roc_auc", min_delta=0.0),), min_holdout=1)
    j = judge(gates, result({"roc_auc": 0.8}, {}))
    assert j.verdict is Verdict.REJECTED
    assert j.failed[0].candidate is None
    assert "candidate unmeasured" in j.reason()


def test_a_slice_that_degrades_rejects_a_candidate_better_on_average() -> None:
    gates = GateSettings((MetricGate("accuracy", min_delta=0.0),), 1, slice_max_degradation=0.05)
    j = judge(
        gates,
        result(
            {"accuracy": 0.70},
            {"accuracy": 0.80},
            slices={
                "DE": ({"accuracy": 0.7}, {"accuracy": 0.9}),
                "FR": ({"accuracy": 0.8}, {"accuracy": 0.7}),
            },
        ),
    )
    assert j.verdict is Verdict.REJECTED
    assert [(r.gate, r.slice, r.passed) for r in j.results if r.slice] == [
        ("slice_max_degradation", "DE", True),
        ("slice_max_degradation", "FR", False),
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"champion": {"metrics": {}}, "candidate": {"metrics": {}}}, "holdout_rows"),
        ({"holdout_rows": 5, "candidate": {"metrics": {}}}, "champion.metrics"),
        ({"holdout_rows": 5, "champion": {"metrics": {}}, "candidate": {}}, "candidate.metrics"),
    ],
)
def test_a_result_without_what_the_gates_need_is_malformed(
    bad: dict[str, Any], message: str
) -> None:
    with pytest.raises(MalformedResult, match=message):
        judge(ACCURACY, bad)
