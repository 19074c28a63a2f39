"""The ``models`` section: each model's features, windows, drift tests and labels."""

from __future__ import annotations

import itertools
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from consumers.detectors import ALARM_RULE, DETECTOR_NAMES, ZERO_ONE_ONLY, DetectorSpec
from consumers.labels import LabelSpec
from drift.detectors.losses import regression_scale
from drift.performance import Task
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.stats import NUMERICAL_ONLY, Method
from service.config.archive import RESERVED_COLUMNS, ModelArchiveConfig
from service.config.base import Duration, Strict
from service.config.retrain import ModelRetrainConfig
from service.config.rollout import ModelRolloutConfig


def _increasing(v: list[float] | None) -> list[float] | None:
    if v is not None and any(b <= a for a, b in itertools.pairwise(v)):
        raise ValueError("expected strictly increasing bin edges")
    return v


Bins = Annotated[list[float] | None, Field(min_length=2), AfterValidator(_increasing)]


class FeatureConfig(Strict):
    type: FeatureKind = Field(description="numerical or categorical")
    nullable: bool = False
    bins: Bins = None
    drift_method: Method | None = Field(
        default=None, description="a drift test such as ks, wasserstein, psi, chisquare"
    )
    drift_threshold: float | None = Field(default=None, gt=0)

    @field_validator("drift_method", mode="after")
    @classmethod
    def _method_fits(cls, v: Method | None, info: ValidationInfo) -> Method | None:
        if v in NUMERICAL_ONLY and info.data.get("type") is FeatureKind.CATEGORICAL:
            raise ValueError(f"{v} applies to numerical features only")
        return v


class DriftConfig(Strict):
    """How a model's windows are judged (Evidently's defaults unless set)."""

    min_rows: int = Field(default=30, ge=1)
    min_rows_distance: int = Field(default=300, ge=1)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    bh_correction: bool = False
    confirm_windows: int = Field(default=1, ge=1, description="consecutive drifted windows")
    window_sample: int = Field(default=500, ge=0, description="events kept whole per window")
    reference_bins: int = Field(default=500, ge=10)
    reference_sample: int = Field(default=5000, ge=100)


class PredictionConfig(Strict):
    type: PredictionKind = PredictionKind.NUMERICAL
    bins: Bins = None


def _text(v: Any) -> Any:
    """Class labels may be written as numbers in YAML; they are compared as text."""
    return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


ClassLabel = Annotated[str, BeforeValidator(_text)]


class ReferencePerformance(Strict):
    """The performance a window is tested against: accuracy, or MSE for regression."""

    accuracy: float | None = Field(default=None, ge=0, le=1)
    mse: float | None = Field(default=None, ge=0)
    n: int | None = Field(default=None, ge=2, description="labelled events behind the value")
    mse_variance: float | None = Field(
        default=None, ge=0, description="variance of the reference's squared errors"
    )

    @model_validator(mode="after")
    def _one_metric(self) -> ReferencePerformance:
        if (self.accuracy is None) == (self.mse is None):
            raise ValueError("give exactly one of accuracy (classification) or mse (regression)")
        if self.mse_variance is not None and (self.mse is None or self.n is None):
            raise ValueError("mse_variance needs mse and n")
        return self


class LabelsConfig(Strict):
    """How the model's labels join its predictions and how its performance is judged."""

    enabled: bool = True
    join_ttl: Duration = Field(
        default=3600.0,
        gt=0,
        description="the streaming join's horizon: how long (event time) a side waits in SQL, "
        "e.g. 1h; later labels are joined from the archive (late_labels)",
    )
    task: Task | None = Field(
        default=None, description="classification or regression; default from prediction.type"
    )
    positive_label: ClassLabel = "1"
    negative_label: ClassLabel = "0"
    threshold: float = Field(default=0.5, ge=0, le=1)
    reference: ReferencePerformance | None = None
    min_labeled: int = Field(default=200, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    detectors: list[str] | None = Field(
        default=None,
        description=f"a list of streaming detectors from {', '.join(DETECTOR_NAMES)}",
    )

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        unknown = [name for name in v if name not in DETECTOR_NAMES]
        if unknown:
            raise ValueError(
                f"unknown detector(s) {unknown}; expected some of {list(DETECTOR_NAMES)}"
            )
        if len(set(v)) != len(v):
            raise ValueError("a detector is listed twice")
        return v


class ModelConfig(Strict):
    features: dict[str, FeatureConfig] = Field(min_length=1, description="a mapping of features")
    prediction: PredictionConfig = PredictionConfig()
    window: Duration = Field(description="a window length such as 5m or 1h")
    allowed_lateness: Duration = 0.0
    drift: DriftConfig = DriftConfig()
    # Opt-in: a labels section (even empty) joins labels; without one, data drift only.
    labels: LabelsConfig = LabelsConfig(enabled=False)
    retrain: ModelRetrainConfig = ModelRetrainConfig()
    rollout: ModelRolloutConfig = ModelRolloutConfig()
    archive: ModelArchiveConfig = ModelArchiveConfig()

    @field_validator("features")
    @classmethod
    def _unreserved(cls, v: dict[str, FeatureConfig]) -> dict[str, FeatureConfig]:
        taken = sorted(RESERVED_COLUMNS.intersection(v))
        if taken:
            raise ValueError(f"feature name(s) {taken} are reserved for the archive's columns")
        return v

    @model_validator(mode="after")
    def _labels_fit(self) -> ModelConfig:
        task = self.task
        if task is Task.REGRESSION and self.prediction.type is not PredictionKind.NUMERICAL:
            raise ValueError("labels.task: regression needs prediction.type numerical")
        ref = self.labels.reference
        if ref is not None and (ref.mse is None) == (task is Task.REGRESSION):
            wanted = "mse" if task is Task.REGRESSION else "accuracy"
            raise ValueError(f"labels.reference: a {task} model is judged on {wanted}")
        chosen = self.labels.detectors
        if task is Task.REGRESSION and chosen:
            if ref is None:
                raise ValueError(
                    "labels.detectors: a regression's detectors need labels.reference.mse "
                    "(their loss is the absolute error over 3 reference RMSEs)"
                )
            binary = sorted(ZERO_ONE_ONLY.intersection(chosen))
            if binary:
                raise ValueError(
                    f"labels.detectors: {', '.join(binary)} take 0/1 errors; "
                    "a regression is watched with rule, adwin or page_hinkley"
                )
        return self

    @property
    def task(self) -> Task:
        """The configured task, else regression for numerical predictions, else classification."""
        if self.labels.task is not None:
            return self.labels.task
        if self.prediction.type is PredictionKind.NUMERICAL:
            return Task.REGRESSION
        return Task.CLASSIFICATION

    def label_spec(self, name: str) -> LabelSpec | None:
        """How the model's labels join, or None when its labels are disabled."""
        if not self.labels.enabled:
            return None
        return LabelSpec(
            model=name,
            prediction=self.prediction.type,
            task=self.task,
            join_ttl=self.labels.join_ttl,
            positive_label=self.labels.positive_label,
            negative_label=self.labels.negative_label,
            threshold=self.labels.threshold,
        )

    def detectors(self) -> tuple[str, ...]:
        """The streaming detectors that run: as configured, else the alarm rule.

        By default a regression without a reference runs none: its loss needs
        the reference MSE as a scale.
        """
        if not self.labels.enabled:
            return ()
        if self.labels.detectors is not None:
            return tuple(self.labels.detectors)
        if self.task is Task.REGRESSION and self.labels.reference is None:
            return ()
        return (ALARM_RULE,)

    def detector_spec(self, name: str) -> DetectorSpec | None:
        """What the model's detectors watch, or None when none run."""
        names = self.detectors()
        if not names:
            return None
        ref = self.labels.reference
        scale = None
        if self.task is Task.REGRESSION:
            assert ref is not None and ref.mse is not None
            scale = regression_scale(ref.mse)
        return DetectorSpec(name, self.task, names, scale)

    @field_validator("window")
    @classmethod
    def _whole_seconds(cls, v: float) -> float:
        if v < 1 or v != int(v):
            raise ValueError("expected a whole number of seconds, at least 1s")
        return v

    @field_validator("allowed_lateness")
    @classmethod
    def _whole_lateness(cls, v: float) -> float:
        if v != int(v):
            raise ValueError("expected a whole number of seconds")
        return v

    def spec(self, name: str) -> ModelSpec:
        features = tuple(
            FeatureSpec(fname, f.type, f.nullable, tuple(f.bins or ()))
            for fname, f in self.features.items()
        )
        return ModelSpec(
            name=name,
            features=features,
            prediction=PredictionSpec(self.prediction.type, tuple(self.prediction.bins or ())),
            window_seconds=int(self.window),
            allowed_lateness_seconds=int(self.allowed_lateness),
            sample_size=self.drift.window_sample,
        )

    def drift_methods(self) -> dict[str, Method]:
        return {n: f.drift_method for n, f in self.features.items() if f.drift_method}

    def drift_thresholds(self) -> dict[str, float]:
        return {n: f.drift_threshold for n, f in self.features.items() if f.drift_threshold}
