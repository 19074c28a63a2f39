"""Validation gates: is the candidate good enough to replace the champion?

Pure: the validation job's result (both models scored on the same holdout)
and the configured gates in, every gate's measured values, threshold and
outcome out. The candidate is accepted only when every gate passes.

Gates, per configured metric, in the metric's own direction (accuracy, roc_auc
and r2 grow when better; log_loss, mae and rmse shrink):

- ``min_delta``: the candidate is better than the champion by at least this
  (0.0: at least as good);
- ``max_degradation``: the candidate is worse by at most this;
- ``min_holdout``: the holdout has at least this many rows, so a handful of
  lucky rows never promotes a model;
- per slice of ``slice_feature`` (optional): the candidate is worse than the
  champion by at most ``slice_max_degradation`` on every slice, for every gated
  metric, so a better average cannot hide a broken segment.

A metric the job could not compute (roc_auc on a single class) fails its gate:
what is not measured is not proven.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from drift.performance import Task
from retrain.errors import MalformedResult

HIGHER_IS_BETTER = frozenset({"accuracy", "roc_auc", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
TASK_METRICS = {
    Task.CLASSIFICATION: frozenset({"accuracy", "roc_auc", "log_loss"}),
    Task.REGRESSION: frozenset({"mae", "rmse", "r2"}),
}


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class MetricGate:
    metric: str
    min_delta: float | None = None
    max_degradation: float | None = None


@dataclass(frozen=True, slots=True)
class GateSettings:
    gates: Sequence[MetricGate]
    min_holdout: int
    slice_max_degradation: float | None = None  # None: no per-slice check


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's check. ``slice`` is the slice value for per-slice gates, else None;
    values are None where the job could not measure them."""

    gate: str
    metric: str | None
    slice: str | None
    champion: float | None
    candidate: float | None
    threshold: float
    passed: bool

    def describe(self) -> str:
        where = f" on slice {self.slice}" if self.slice is not None else ""
        what = self.metric or "holdout rows"
        # A gate without a metric counts rows: whole numbers, not 199.0000.
        rows = self.metric is None
        values = f"champion {_fmt(self.champion, rows)}, candidate {_fmt(self.candidate, rows)}"
        return f"{self.gate} {what}{where}: {values}, threshold {self.threshold:g}"


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    results: tuple[GateResult, ...]

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def reason(self) -> str:
        failed = self.failed
        if not failed:
            return f"all {len(self.results)} gates passed"
        return "; ".join(r.describe() for r in failed)


def improvement(metric: str, champion: float, candidate: float) -> float:
    """How much better the candidate is, in the metric's direction (negative: worse).

    >>> improvement("accuracy", 0.70, 0.82), improvement("mae", 3.0, 2.5)
    (0.12, 0.5)
    """
    if metric in HIGHER_IS_BETTER:
        return round(candidate - champion, 12)
    if metric in LOWER_IS_BETTER:
        return round(champion - candidate, 12)
    raise ValueError(f"unknown metric {metric!r}")


def judge(settings: GateSettings, result: Mapping[str, Any]) -> Judgement:
    """Every gate on a validation job's ``result`` (the executor contract's validate result)."""
    holdout = result.get("holdout_rows")
    if not isinstance(holdout, int) or isinstance(holdout, bool):
        raise MalformedResult("validation result has no integer holdout_rows")
    champion, candidate = _side(result, "champion"), _side(result, "candidate")
    results = [
        GateResult(
            "min_holdout",
            None,
            None,
            None,
            float(holdout),
            float(settings.min_holdout),
            holdout >= settings.min_holdout,
        )
    ]
    for gate in settings.gates:
        results.extend(_metric_gates(gate, None, champion["metrics"], candidate["metrics"]))
    if settings.slice_max_degradation is not None:
        results.extend(_slice_gates(settings, champion, candidate))
    verdict = Verdict.ACCEPTED if all(r.passed for r in results) else Verdict.REJECTED
    return Judgement(verdict, tuple(results))


def _side(result: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    side = result.get(name)
    if not isinstance(side, Mapping) or not isinstance(side.get("metrics"), Mapping):
        raise MalformedResult(f"validation result has no {name}.metrics")
    return side


def _metric_gates(
    gate: MetricGate,
    slice_value: str | None,
    champion: Mapping[str, Any],
    candidate: Mapping[str, Any],
    degradation_gate: str = "max_degradation",
) -> list[GateResult]:
    old, new = _number(champion.get(gate.metric)), _number(candidate.get(gate.metric))
    gain = None if old is None or new is None else improvement(gate.metric, old, new)
    out = []
    if gate.min_delta is not None:
        ok = gain is not None and gain >= gate.min_delta
        out.append(GateResult("min_delta", gate.metric, slice_value, old, new, gate.min_delta, ok))
    if gate.max_degradation is not None:
        ok = gain is not None and -gain <= gate.max_degradation
        out.append(
            GateResult(
                degradation_gate, gate.metric, slice_value, old, new, gate.max_degradation, ok
            )
        )
    return out


def _slice_gates(
    settings: GateSettings, champion: Mapping[str, Any], candidate: Mapping[str, Any]
) -> list[GateResult]:
    assert settings.slice_max_degradation is not None
    old_slices = champion.get("slices") or {}
    new_slices = candidate.get("slices") or {}
    if not isinstance(old_slices, Mapping) or not isinstance(new_slices, Mapping):
        raise MalformedResult("validation result's slices are not a mapping")
    out: list[GateResult] = []
    for value in sorted(set(old_slices) & set(new_slices)):
        old, new = old_slices[value], new_slices[value]
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            raise MalformedResult(f"validation result's slice {value!r} is not a mapping")
        for gate in settings.gates:
            bound = MetricGate(gate.metric, max_degradation=settings.slice_max_degradation)
            old_m, new_m = old.get("metrics", {}), new.get("metrics", {})
            out.extend(_metric_gates(bound, str(value), old_m, new_m, "slice_max_degradation"))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _fmt(value: float | None, rows: bool = False) -> str:
    if value is None:
        return "unmeasured"
    return f"{value:.0f}" if rows else f"{value:.4f}"
