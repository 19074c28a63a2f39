"""The outcome of comparing one window with a reference: frozen, plain records.

>>> f = FeatureDrift("x", FeatureKind.NUMERICAL, Method.WASSERSTEIN, 0.31, None, 0.1, True,
...                  2000, 1000, 0.0, 0.05)
>>> report = DriftReport((f,), reference_rows=2000, current_rows=1053, drift_share=0.5)
>>> report.drifted_share, report.dataset_drift, report.feature("x").drifted
(1.0, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drift.schema import FeatureKind
from drift.stats import Method


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """The verdict on one feature.

    ``score`` is the test statistic (KS D, chi-square, Z) or the distance;
    ``p_value`` is None for distances. ``drifted`` is None when either side
    had fewer non-null values than the evaluation's ``min_rows``; then
    ``method``, ``score`` and ``threshold`` are None too. With
    Benjamini-Hochberg correction the verdict compares ``p_value_adjusted``
    with the threshold.
    """

    name: str
    kind: FeatureKind
    method: Method | None
    score: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool | None
    reference_count: int
    current_count: int
    reference_null_share: float
    current_null_share: float
    unseen_categories: tuple[str, ...] = ()
    p_value_adjusted: float | None = None

    @property
    def insufficient_data(self) -> bool:
        return self.drifted is None


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Verdicts for every feature and for the data set as a whole.

    ``drifted_share`` is the share of drifted features among those with a
    verdict; the data set drifts when it reaches ``drift_share`` (Evidently's
    rule). Both are None when no feature had enough data.
    """

    features: tuple[FeatureDrift, ...]
    reference_rows: int
    current_rows: int
    drift_share: float = 0.5
    drifted_share: float | None = field(init=False)
    dataset_drift: bool | None = field(init=False)

    def __post_init__(self) -> None:
        judged = [f for f in self.features if f.drifted is not None]
        share = sum(1 for f in judged if f.drifted) / len(judged) if judged else None
        object.__setattr__(self, "drifted_share", share)
        object.__setattr__(
            self, "dataset_drift", None if share is None else share >= self.drift_share
        )

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)
