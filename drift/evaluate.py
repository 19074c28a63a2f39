"""Compare a current window with a reference: the library's entry point.

``reference`` is a data frame or a :class:`~drift.profile.ReferenceProfile`;
``current`` a data frame or a :class:`~drift.sketch.WindowSketch` built on the
profile's edges. Frames are duck-typed (``frame.columns``, ``frame[name]``),
so pandas is never imported here; a plain mapping of column name to values
works too. By default every feature gets Evidently
0.7's test and threshold (see :mod:`drift.compare`) and the data set drifts
when at least half of the features with a verdict drift.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> class Frame(dict):  # anything with .columns and [name] will do
...     columns = property(lambda self: list(self))
>>> ref = Frame(x=rng.normal(size=3000), c=rng.choice(["a", "b"], 3000))
>>> cur = Frame(x=rng.normal(1.0, size=3000), c=rng.choice(["a", "b"], 3000))
>>> report = evaluate(ref, cur)
>>> [(f.name, str(f.method), f.drifted) for f in report.features]
[('x', 'wasserstein', True), ('c', 'jensenshannon', False)]
>>> report.drifted_share, report.dataset_drift
(0.5, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from drift import columns as col
from drift.compare import compare_categorical, compare_numerical
from drift.errors import SketchMismatch
from drift.profile import (
    CategoricalProfile,
    CurrentColumn,
    FeatureProfile,
    NumericalProfile,
    ReferenceProfile,
    current_columns,
    profile_columns,
)
from drift.report import DriftReport, FeatureDrift
from drift.schema import FeatureKind
from drift.sketch import CategoricalSketch, NumericSketch, WindowSketch
from drift.stats import NUMERICAL_ONLY, Method
from drift.stats.correction import benjamini_hochberg

DEFAULT_MIN_ROWS = 30


def evaluate(
    reference: Any,
    current: Any,
    *,
    schema: Mapping[str, FeatureKind | str] | None = None,
    methods: Mapping[str, Method | str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    min_rows: int = DEFAULT_MIN_ROWS,
    bh_correction: bool = False,
    drift_share: float = 0.5,
    min_rows_distance: int = 1,
) -> DriftReport:
    """Test every feature of ``reference`` for drift in ``current``.

    Parameters
    ----------
    reference, current
        Data frames, or a ReferenceProfile and a WindowSketch on its edges.
    schema
        Feature kinds that override inference from a reference frame
        (``"numerical"`` or ``"categorical"`` per column name).
    methods, thresholds
        Per-feature test (an Evidently stattest name such as ``"psi"``) and
        threshold, overriding the defaults.
    min_rows
        Fewest non-null values each side needs for a verdict; below it the
        feature's ``drifted`` is None ("insufficient data"), not False.
    bh_correction
        Adjust the p-values of p-value tests across features with the
        Benjamini-Hochberg procedure before comparing them with thresholds.
    drift_share
        Share of drifted features at which the whole data set counts as drifted.
    min_rows_distance
        Fewest current values a distance test (Wasserstein, Jensen-Shannon, PSI,
        KL divergence, Hellinger) needs for a verdict; below it "insufficient
        data". A distance measured on a small sample is biased upwards, so noise
        reads as drift; p-value tests account for the sample size themselves.
        The default, 1, adds no floor (Evidently's behaviour); the service's
        ``drift.min_rows_distance`` sets one.
    """
    if min_rows < 1 or min_rows_distance < 1:
        raise ValueError("min_rows and min_rows_distance must be at least 1")
    columns: dict[str, Any] = {}
    if isinstance(reference, ReferenceProfile):
        if schema is not None:
            raise ValueError("schema applies to reference frames; a profile has its kinds")
        kinds = {name: f.kind for name, f in reference.features.items()}
    else:
        columns, kinds = _frame_columns(reference, schema)
    # Overrides are checked before any data is read.
    chosen = _methods(kinds, methods or {})
    limits = dict(thresholds or {})
    _check_names(kinds, limits, "thresholds")
    profile, summaries, current_rows = _prepare(reference, columns, kinds, current)
    features = [
        _judge(f, summaries[name], chosen.get(name), limits.get(name), min_rows, min_rows_distance)
        for name, f in profile.features.items()
    ]
    if bh_correction:
        features = _benjamini_hochberg(features)
    return DriftReport(tuple(features), profile.rows, current_rows, drift_share)


def profile_frame(
    frame: Any, schema: Mapping[str, FeatureKind | str] | None = None, **options: Any
) -> ReferenceProfile:
    """Profile a data frame; column kinds come from ``schema``, else are inferred.

    ``options`` go to :meth:`ReferenceProfile.from_columns` (bins, sample_size, seed).
    """
    columns, kinds = _frame_columns(frame, schema)
    return ReferenceProfile.from_columns(columns, kinds, **options)


def _column_names(frame: Any) -> dict[str, Any]:
    labels = frame.columns if hasattr(frame, "columns") else frame
    return {str(c): c for c in labels}


def _rows(frame: Any) -> int:
    if hasattr(frame, "columns"):
        return len(frame)
    return max((len(v) for v in frame.values()), default=0)


def _frame_columns(
    frame: Any, schema: Mapping[str, FeatureKind | str] | None
) -> tuple[dict[str, Any], dict[str, FeatureKind]]:
    names = _column_names(frame)
    given = dict(schema or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"schema names columns the reference lacks: {unknown}")
    kinds: dict[str, FeatureKind] = {}
    for name, key in names.items():
        kind = FeatureKind(given[name]) if name in given else col.infer_kind(frame[key])
        if kind is not None:
            kinds[name] = kind
    return {n: frame[names[n]] for n in kinds}, kinds


def _prepare(
    reference: Any, columns: dict[str, Any], kinds: dict[str, FeatureKind], current: Any
) -> tuple[ReferenceProfile, dict[str, CurrentColumn], int]:
    """The profile, the current summaries and the current row count."""
    if isinstance(reference, ReferenceProfile) or isinstance(current, WindowSketch):
        profile = (
            reference
            if isinstance(reference, ReferenceProfile)
            else ReferenceProfile.from_columns(columns, kinds)
        )
        return profile, *_current(profile, current)
    profile, summaries = _profile_and_summarise(columns, kinds, _current_frame(current, kinds))
    return profile, summaries, _rows(current)


def _profile_and_summarise(
    columns: Mapping[str, Any], kinds: Mapping[str, FeatureKind], current: Mapping[str, Any]
) -> tuple[ReferenceProfile, dict[str, CurrentColumn]]:
    features, summaries = profile_columns(columns, kinds, current)
    rows = max((len(c) for c in columns.values()), default=0)
    return ReferenceProfile(features, rows), summaries


def _check_names(kinds: Mapping[str, FeatureKind], given: Mapping[str, object], what: str) -> None:
    unknown = sorted(set(given) - set(kinds))
    if unknown:
        raise ValueError(f"{what} name features the reference lacks: {unknown}")


def _methods(
    kinds: Mapping[str, FeatureKind], given: Mapping[str, Method | str]
) -> dict[str, Method]:
    _check_names(kinds, given, "methods")
    out: dict[str, Method] = {}
    for name, value in given.items():
        try:
            method = Method(value)
        except ValueError:
            valid = ", ".join(m.value for m in Method)
            raise ValueError(f"{name}: unknown method {value!r}; expected one of {valid}") from None
        if method in NUMERICAL_ONLY and kinds[name] is FeatureKind.CATEGORICAL:
            raise ValueError(f"{name}: method {method} applies to numerical features only")
        out[name] = method
    return out


def _current(profile: ReferenceProfile, current: Any) -> tuple[dict[str, CurrentColumn], int]:
    if isinstance(current, WindowSketch):
        return _from_window(profile, current), current.events
    columns = _current_frame(current, profile.features)
    return current_columns(profile, columns), _rows(current)


def _current_frame(frame: Any, features: Iterable[str]) -> dict[str, Any]:
    names = _column_names(frame)
    missing = sorted(set(features) - set(names))
    if missing:
        raise ValueError(f"the current data lacks features {missing}")
    return {n: frame[names[n]] for n in features}


def _from_window(profile: ReferenceProfile, window: WindowSketch) -> dict[str, CurrentColumn]:
    out: dict[str, CurrentColumn] = {}
    for name, feature in profile.features.items():
        sketch = window.features.get(name)
        if sketch is None:
            raise SketchMismatch(f"the window sketch has no feature {name!r}")
        if isinstance(feature, NumericalProfile):
            if not isinstance(sketch, NumericSketch) or sketch.edges != feature.edges:
                raise SketchMismatch(f"{name}: the window sketch is not on the profile's edges")
        elif not isinstance(sketch, CategoricalSketch):
            raise SketchMismatch(f"{name}: the window sketch is numerical, the profile categorical")
        out[name] = CurrentColumn(sketch)
    return out


def _share(nulls: int, count: int) -> float:
    return nulls / (nulls + count) if nulls + count else 0.0


def _judge(
    feature: FeatureProfile,
    current: CurrentColumn,
    method: Method | None,
    threshold: float | None,
    min_rows: int,
    min_rows_distance: int,
) -> FeatureDrift:
    sketch = current.sketch
    unseen: tuple[str, ...] = ()
    if isinstance(feature, CategoricalProfile) and isinstance(sketch, CategoricalSketch):
        known = feature.categories
        unseen = tuple(sorted(k for k, n in sketch.counts.items() if n and k not in known))
        if sketch.other:
            # Past the window's caps: named as the bucket, which comparisons also use.
            unseen = (*unseen, sketch.other_key(sketch.counts.keys() | known))
    cur_count = sketch.count
    blank = FeatureDrift(
        name=feature.name,
        kind=feature.kind,
        method=None,
        score=None,
        p_value=None,
        threshold=None,
        drifted=None,
        reference_count=feature.count,
        current_count=cur_count,
        reference_null_share=_share(feature.nulls, feature.count),
        current_null_share=_share(sketch.nulls, cur_count),
        unseen_categories=unseen,
    )
    if feature.count < min_rows or cur_count < min_rows:
        return blank
    if isinstance(feature, NumericalProfile) and isinstance(sketch, NumericSketch):
        chosen, score, p_value = compare_numerical(feature, sketch, current.values, method)
    elif isinstance(feature, CategoricalProfile) and isinstance(sketch, CategoricalSketch):
        chosen, score, p_value = compare_categorical(feature, sketch, method)
    else:
        raise SketchMismatch(f"{feature.name}: the current summary is of another kind")
    if not chosen.is_p_value and cur_count < min_rows_distance:
        return blank
    limit = chosen.default_threshold if threshold is None else threshold
    value = p_value if p_value is not None else score
    return dataclasses.replace(
        blank,
        method=chosen,
        score=score,
        p_value=p_value,
        threshold=limit,
        drifted=chosen.drifted(value, limit),
    )


def _benjamini_hochberg(features: list[FeatureDrift]) -> list[FeatureDrift]:
    tested = [
        i
        for i, f in enumerate(features)
        if f.p_value is not None and f.method is not None and f.method.is_p_value
    ]
    adjusted = benjamini_hochberg([features[i].p_value or 0.0 for i in tested])
    out = list(features)
    for i, q in zip(tested, adjusted.tolist(), strict=True):
        f = out[i]
        assert f.method is not None and f.threshold is not None
        out[i] = dataclasses.replace(
            f, p_value_adjusted=q, drifted=f.method.drifted(q, f.threshold)
        )
    return out
