"""The canary analysis of one span, on the live stream split by ``model_version``.

The serving layer stamps the version it served into every prediction event's
``model_version``, and ingestion keeps the stream per (model, version, window,
partition): ``window_aggregates`` (events and a sketch of each window) and, once
labels join, ``performance_aggregates``. :func:`analyse` reads the rows of the
span's two versions (one bounded query per table) and hands their totals to
:mod:`drift.canary`'s checks. What each check reads:

- ``sample_ratio``: the sum of ``window_aggregates.event_count`` per version (the
  events aggregated into the sketches) against ``canary_percent / 100`` of the
  span, at ``srm_alpha``. Late events (``late_count``) were routed the same way but
  are not in the sketches the other checks read; they are reported in ``details``.
- ``prediction_divergence``: the prediction column of the same rows' window
  sketches, merged per version: a numerical prediction as its histogram on the
  bins it was ingested on (the reference profile's prediction edges, else the
  model's configured ones, with the under- and overflow buckets), a categorical or
  probabilities prediction (its most probable class) as class counts with the
  overflow bucket of capped categories. Both versions are compared on one set of
  bins: when a profile change gave the span rows on other bins, the bins holding
  most events of both are used and the rest is counted in ``details``
  (``left_out_canary``, ``left_out_stable``).
- ``accuracy_noninferiority`` (``task`` classification): from the classification
  sketches of ``performance_aggregates``, the labelled pairs (the confusion
  matrix's total) and the correct ones (actual class equal to the predicted one),
  with ``margin``, ``alpha`` and ``min_labeled``;
- ``mae_noninferiority`` (``task`` regression): ``count``, ``sum_abs_err`` and
  ``sum_sq_err`` of the regression sketches (the squared absolute error is the
  squared error). Sketches of the other task are left out and counted in
  ``details`` (``other_task_rows``);
- ``latency_p<percentile>_ratio``: the latency sketches of the same rows
  (``window_aggregates.latency``, the ``latency_ms`` of the events that carry one),
  merged per version, with ``latency_percentile``, ``latency_max_ratio``, ``alpha``
  and ``latency_min_samples``.

**Windows.** A span is judged on whole windows: the rows whose window starts at
or after ``span.start`` and ends by ``span.end``. A window straddling the start
holds events routed at the previous step's weight (at the first step, events from
before the canary had traffic), which would fail a healthy split's sample-ratio
check; one straddling the end is not over. So a step's ``min_duration`` should be
at least two windows of the model (``models.<name>.window``): only then does every
span of that length, however it falls on the window grid, hold a whole window. A
span without one reads nothing, and every check is inconclusive.

**Labels** are counted in the window of their prediction and arrive later: a
span's labelled pairs are those joined by the time of the analysis, with the same
delay for both versions.

**Latency** is optional in the event contract. When the span's events of a
version carry none, the latency check is inconclusive with the reason "no
latency_ms in events of canary version ..." (or stable, or both) and sample sizes
of 0: it is recorded with every analysis, so an operator sees that latency was not
judged and why, but it holds no step (the rollout holds only on an inconclusive
check with data on both sides; :mod:`retrain.rollout.phases`). A model whose
serving layer never stamps ``latency_ms`` therefore rolls out on the other checks,
as it did before latency was stored. A version with some latencies, but fewer than
``latency_min_samples``, holds the step as any check short of data does.

**No rows.** A version without rows in the span (an unknown model, a version
name nobody stamps, a span with no whole window) gives the same checks,
inconclusive, each with a reason naming what is missing: never an empty list (a
caller reading "no check failed" as a pass would promote a canary nobody
measured) and never an exception. The one exception to "inconclusive" is the
sample-ratio check when only the canary (or only stable) has events: enough
events of one version and none of the other at the router's weight is the
broken split or version stamping that check exists to catch, so it is tested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from db.canary_reads import LabelledShare, WindowShare, labelled_shares, window_shares
from db.layouts import LayoutRepository
from drift.canary import (
    Check,
    Outcome,
    accuracy_noninferiority,
    error_noninferiority,
    latency_ratio,
    prediction_divergence,
    sample_ratio,
)
from drift.canary.latency import check_name
from drift.latency_sketch import LatencySketch
from drift.performance import ClassificationSketch, PerformanceSketch, RegressionSketch, Task
from drift.sketch import (
    CategoricalSketch,
    ColumnSketch,
    EdgeLookup,
    NumericSketch,
    WindowSketch,
)
from retrain.rollout.span import AnalysisSettings, Span

__all__ = ["analyse"]

# The bins of a prediction histogram: a numerical prediction's edges, or None for
# class counts. Only histograms on the same bins are compared.
Bins = tuple[float, ...] | None


@dataclass(slots=True)
class _Stream:
    """One version's window rows in the span, summed."""

    events: int = 0
    late: int = 0
    windows: set[datetime] = field(default_factory=set)
    predictions: dict[Bins, ColumnSketch] = field(default_factory=dict)
    latency: LatencySketch = field(default_factory=LatencySketch)

    def add(self, share: WindowShare, edges: EdgeLookup) -> None:
        self.events += share.event_count
        self.late += share.late_count
        self.windows.add(share.window_start)
        if share.latency is not None:
            self.latency.merge(LatencySketch.from_bytes(share.latency))
        prediction = WindowSketch.from_bytes(share.sketch, edges).prediction
        bins = prediction.edges if isinstance(prediction, NumericSketch) else None
        held = self.predictions.get(bins)
        if held is None:
            self.predictions[bins] = prediction
        else:
            _merge(held, prediction)


def _merge(held: ColumnSketch, more: ColumnSketch) -> None:
    # Same bins, so same kind: the key of ``_Stream.predictions`` says which.
    if isinstance(held, NumericSketch) and isinstance(more, NumericSketch):
        held.merge(more)
        return
    if isinstance(held, CategoricalSketch) and isinstance(more, CategoricalSketch):
        held.merge(more)
        return
    raise TypeError("predictions on the same bins are of one kind")


@dataclass(slots=True)
class _Labelled:
    """One version's labelled pairs in the span, summed for the span's task."""

    pairs: int = 0
    correct: int = 0
    sum_abs_err: float = 0.0
    sum_sq_err: float = 0.0
    other_task_rows: int = 0

    def add(self, share: LabelledShare, task: Task) -> None:
        sketch = PerformanceSketch.from_bytes(share.sketch).sketch
        if task is Task.CLASSIFICATION and isinstance(sketch, ClassificationSketch):
            # Classes are compared as text, as the sketch's own accuracy does.
            self.pairs += sum(sketch.confusion.values())
            self.correct += sum(n for (a, p), n in sketch.confusion.items() if a == p)
        elif task is Task.REGRESSION and isinstance(sketch, RegressionSketch):
            self.pairs += sketch.count
            self.sum_abs_err += sketch.sum_abs_err
            self.sum_sq_err += sketch.sum_sq_err
        else:
            self.other_task_rows += 1


def analyse(session: Session, span: Span, settings: AnalysisSettings) -> list[Check]:
    """Every check of ``span``: sample ratio, prediction divergence, labelled
    performance and latency.

    See the module's docstring for what each reads, the whole-window rule (a step
    should last at least two windows) and events without ``latency_ms``. Raises
    ValueError for a span that compares a version with itself or names an unknown
    task; missing data only ever makes checks inconclusive.
    """
    if span.stable == span.canary:
        raise ValueError(f"span compares version {span.stable!r} with itself")
    task = Task(span.task)
    versions = (span.stable, span.canary)
    streams = {v: _Stream() for v in versions}
    edges = LayoutRepository(session).edges
    for share in window_shares(session, span.model, versions, span.start, span.end):
        streams[share.model_version].add(share, edges)
    labelled = {v: _Labelled() for v in versions}
    for pairs in labelled_shares(session, span.model, versions, span.start, span.end):
        labelled[pairs.model_version].add(pairs, task)
    return [
        _sample_ratio(span, streams[span.canary], streams[span.stable], settings),
        _divergence(span, streams[span.canary], streams[span.stable], settings),
        _performance(span, task, labelled[span.canary], labelled[span.stable], settings),
        _latency(span, streams[span.canary], streams[span.stable], settings),
    ]


def _where(span: Span) -> str:
    return (
        f"model {span.model!r} in whole windows within "
        f"[{span.start.isoformat()}, {span.end.isoformat()})"
    )


def _absent(
    name: str, threshold: float, n_canary: int, n_stable: int, span: Span, what: str
) -> Check | None:
    """An inconclusive check naming the version(s) without ``what``; None if both have some."""
    missing = [
        f"{role} version {version!r}"
        for role, version, n in (
            ("canary", span.canary, n_canary),
            ("stable", span.stable, n_stable),
        )
        if n == 0
    ]
    if not missing:
        return None
    reason = f"inconclusive: no {what} of {' or '.join(missing)} of {_where(span)}"
    return Check(name, Outcome.INCONCLUSIVE, None, threshold, n_canary, n_stable, reason)


def _with(check: Check, extra: Mapping[str, float]) -> Check:
    return dataclasses.replace(check, details={**check.details, **extra})


def _sample_ratio(
    span: Span, canary: _Stream, stable: _Stream, settings: AnalysisSettings
) -> Check:
    # Only both missing is "no data": one version alone is the mismatch this check is for.
    if canary.events == 0 and stable.events == 0:
        reason = f"inconclusive: no events of either version of {_where(span)}"
        return Check("sample_ratio", Outcome.INCONCLUSIVE, None, settings.srm_alpha, 0, 0, reason)
    check = sample_ratio(
        stable.events, canary.events, span.canary_percent / 100.0, alpha=settings.srm_alpha
    )
    extra = {
        "windows_canary": float(len(canary.windows)),
        "windows_stable": float(len(stable.windows)),
        "late_canary": float(canary.late),
        "late_stable": float(stable.late),
    }
    return _with(check, extra)


def _common_bins(canary: Mapping[Bins, ColumnSketch], stable: Mapping[Bins, ColumnSketch]) -> Bins:
    """The bins both versions have predictions on that hold most of both (KeyError if none)."""
    shared = [b for b in canary if b in stable]
    if not shared:
        raise KeyError("no bins in common")
    return max(shared, key=lambda b: (min(canary[b].count, stable[b].count), canary[b].count))


def _histograms(
    canary: ColumnSketch, stable: ColumnSketch
) -> tuple[list[int], list[int]] | tuple[dict[str, int], dict[str, int]]:
    if isinstance(canary, NumericSketch) and isinstance(stable, NumericSketch):
        # Null predictions are no prediction value; the decoder refuses them anyway.
        return canary.hist.tolist(), stable.hist.tolist()
    if isinstance(canary, CategoricalSketch) and isinstance(stable, CategoricalSketch):
        # Both sides name their overflow bucket alike: among the union of the two's classes.
        names = set(canary.counts) | set(stable.counts)
        return canary.comparable_counts(names), stable.comparable_counts(names)
    raise TypeError("predictions on the same bins are of one kind")


def _divergence(span: Span, canary: _Stream, stable: _Stream, settings: AnalysisSettings) -> Check:
    name, threshold = "prediction_divergence", settings.divergence_threshold
    n_c = sum(s.count for s in canary.predictions.values())
    n_s = sum(s.count for s in stable.predictions.values())
    absent = _absent(name, threshold, n_c, n_s, span, "predictions")
    if absent is not None:
        return absent
    try:
        bins = _common_bins(canary.predictions, stable.predictions)
    except KeyError:
        reason = (
            f"inconclusive: the versions' predictions of {_where(span)} were binned "
            "differently (a reference profile changed), so they cannot be compared"
        )
        return Check(name, Outcome.INCONCLUSIVE, None, threshold, n_c, n_s, reason)
    c_hist, s_hist = _histograms(canary.predictions[bins], stable.predictions[bins])
    check = prediction_divergence(c_hist, s_hist, threshold=threshold, min_n=settings.min_events)
    extra = {
        "left_out_canary": float(n_c - canary.predictions[bins].count),
        "left_out_stable": float(n_s - stable.predictions[bins].count),
    }
    return _with(check, extra)


def _performance(
    span: Span, task: Task, canary: _Labelled, stable: _Labelled, settings: AnalysisSettings
) -> Check:
    classification = task is Task.CLASSIFICATION
    name = "accuracy_noninferiority" if classification else "mae_noninferiority"
    absent = _absent(name, settings.margin, canary.pairs, stable.pairs, span, "labelled pairs")
    extra = {"other_task_rows": float(canary.other_task_rows + stable.other_task_rows)}
    if absent is not None:
        return _with(absent, extra)
    if classification:
        check = accuracy_noninferiority(
            canary.correct,
            canary.pairs,
            stable.correct,
            stable.pairs,
            margin=settings.margin,
            alpha=settings.alpha,
            min_n=settings.min_labeled,
        )
    else:
        check = error_noninferiority(
            (canary.pairs, canary.sum_abs_err, canary.sum_sq_err),
            (stable.pairs, stable.sum_abs_err, stable.sum_sq_err),
            margin=settings.margin,
            alpha=settings.alpha,
            # Welch's interval needs two pairs per version to have a variance at all.
            min_n=max(settings.min_labeled, 2),
        )
    return _with(check, extra)


def _latency(span: Span, canary: _Stream, stable: _Stream, settings: AnalysisSettings) -> Check:
    name, threshold = check_name(settings.latency_percentile), settings.latency_max_ratio
    n_c, n_s = canary.latency.count, stable.latency.count
    absent = _absent(name, threshold, n_c, n_s, span, "latency_ms in events")
    if absent is not None:
        return absent
    return latency_ratio(
        canary.latency,
        stable.latency,
        percentile=settings.latency_percentile,
        max_ratio=threshold,
        alpha=settings.alpha,
        min_n=settings.latency_min_samples,
    )
