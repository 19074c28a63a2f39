"""Configuration: one YAML file, overridable by ``DRIFTWATCH_*`` variables, validated.

``DRIFTWATCH_KAFKA__GROUP_ID=x`` overrides ``kafka.group_id``; ``__`` separates
levels and keys match case-insensitively, so ``DRIFTWATCH_MODELS__FRAUD__WINDOW``
reaches ``models.fraud.window``. Only variables whose first level is a
top-level key are read, so ``DRIFTWATCH_CONFIG`` and friends never collide.
"""

from __future__ import annotations

import itertools
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from consumers.detectors import ALARM_RULE, DETECTOR_NAMES, ZERO_ONE_ONLY, DetectorSpec
from consumers.labels import LabelSpec
from drift.compare import NUMERICAL_ONLY
from drift.detectors.losses import regression_scale
from drift.performance import Task
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.stats import Method
from service.durations import parse_duration
from service.errors import ConfigError

ENV_PREFIX = "DRIFTWATCH_"
Duration = Annotated[float, BeforeValidator(parse_duration)]

_SECURITY_KEYS = frozenset(
    {
        "security_protocol",
        "ssl_context",
        "ssl_check_hostname",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_crlfile",
        "ssl_ciphers",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)
# Settings the service owns itself; letting users override them would break exactly-once.
_RESERVED_CONSUMER_KEYS = frozenset(
    {
        "bootstrap_servers",
        "group_id",
        "enable_auto_commit",
        "api_version",
        "auto_offset_reset",
        "partition_assignment_strategy",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Topics(_Strict):
    predictions: str = "predictions"
    labels: str = "labels"
    dead_letter: str = "driftwatch-dead-letter"


class KafkaConfig(_Strict):
    bootstrap_servers: list[str] = Field(description="a list of host:port strings")
    group_id: str = "driftwatch"
    api_version: tuple[int, ...] | None = Field(
        default=None, description="a broker version such as '0.9' or '2.8.1'; unset = probe"
    )
    topics: Topics = Topics()
    startup_timeout: Duration = Field(
        default=60.0, description="how long start-up waits for the brokers, e.g. 60s"
    )
    security: dict[str, Any] = {}
    consumer: dict[str, Any] = {}
    producer: dict[str, Any] = {}

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if isinstance(v, list) and not v:
            raise ValueError("expected at least one host:port")
        if isinstance(v, list):
            for s in v:
                if not isinstance(s, str) or ":" not in s:
                    raise ValueError(f"expected host:port, got {s!r}")
        return v

    @field_validator("api_version", mode="before")
    @classmethod
    def _parse_version(cls, v: Any) -> Any:
        if v is None or isinstance(v, list | tuple):
            return v
        if v == "":
            return None  # lets DRIFTWATCH_KAFKA__API_VERSION= restore probing
        if isinstance(v, float):
            raise ValueError("write the version as a quoted string, e.g. '0.9' or '0.10.2'")
        text = str(v).strip()
        try:
            return tuple(int(part) for part in text.split("."))
        except ValueError:
            raise ValueError(f"expected a version such as '0.9', got {text!r}") from None

    @field_validator("security")
    @classmethod
    def _known_security(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - _SECURITY_KEYS)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {unknown}; expected some of {sorted(_SECURITY_KEYS)}"
            )
        return v

    @field_validator("consumer")
    @classmethod
    def _known_consumer(cls, v: dict[str, Any]) -> dict[str, Any]:
        from kafka import KafkaConsumer

        return _check_client_options(v, set(KafkaConsumer.DEFAULT_CONFIG), "KafkaConsumer")

    @field_validator("producer")
    @classmethod
    def _known_producer(cls, v: dict[str, Any]) -> dict[str, Any]:
        from kafka import KafkaProducer

        return _check_client_options(v, set(KafkaProducer.DEFAULT_CONFIG), "KafkaProducer")


def _check_client_options(v: dict[str, Any], known: set[str], client: str) -> dict[str, Any]:
    reserved = sorted(set(v) & _RESERVED_CONSUMER_KEYS)
    if reserved:
        raise ValueError(f"{reserved} are set by driftwatch itself and cannot be overridden")
    unknown = sorted(set(v) - known)
    if unknown:
        raise ValueError(f"unknown {client} option(s) {unknown}")
    return v


class DatabaseConfig(_Strict):
    url: str = "sqlite:///driftwatch.db"

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, v: str) -> str:
        if not v.startswith(("sqlite", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        return v


class IngestConfig(_Strict):
    flush_events: int = Field(default=20_000, gt=0)
    flush_interval: Duration = 2.0
    max_clock_skew: Duration = 3600.0
    start_from: Literal["earliest", "latest"] = "earliest"


class MetricsConfig(_Strict):
    host: str = "0.0.0.0"
    port: int = Field(default=9108, ge=0, le=65535, description="a TCP port; 0 turns metrics off")


def _increasing(v: list[float] | None) -> list[float] | None:
    if v is not None and any(b <= a for a, b in itertools.pairwise(v)):
        raise ValueError("expected strictly increasing bin edges")
    return v


Bins = Annotated[list[float] | None, Field(min_length=2), AfterValidator(_increasing)]


class FeatureConfig(_Strict):
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


class DriftConfig(_Strict):
    """How a model's windows are judged (Evidently's defaults unless set)."""

    min_rows: int = Field(default=30, ge=1)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    bh_correction: bool = False
    confirm_windows: int = Field(default=1, ge=1, description="consecutive drifted windows")
    window_sample: int = Field(default=500, ge=0, description="events kept whole per window")
    reference_bins: int = Field(default=500, ge=10)
    reference_sample: int = Field(default=5000, ge=100)


class PredictionConfig(_Strict):
    type: PredictionKind = PredictionKind.NUMERICAL
    bins: Bins = None


def _text(v: Any) -> Any:
    """Class labels may be written as numbers in YAML; they are compared as text."""
    return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


ClassLabel = Annotated[str, BeforeValidator(_text)]


class ReferencePerformance(_Strict):
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


class LabelsConfig(_Strict):
    """How the model's labels join its predictions and how its performance is judged."""

    enabled: bool = True
    join_ttl: Duration = Field(
        default=86400.0, gt=0, description="how long (event time) a side waits, e.g. 1d"
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


class ModelConfig(_Strict):
    features: dict[str, FeatureConfig] = Field(min_length=1, description="a mapping of features")
    prediction: PredictionConfig = PredictionConfig()
    window: Duration = Field(description="a window length such as 5m or 1h")
    allowed_lateness: Duration = 0.0
    drift: DriftConfig = DriftConfig()
    labels: LabelsConfig = LabelsConfig()

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


class EvaluationConfig(_Strict):
    """When closed windows are evaluated (a scheduler job inside ``driftwatch run``)."""

    interval: Duration = Field(default=10.0, gt=0, description="a period such as 10s")
    idle_partition_timeout: Duration = Field(
        default=60.0, gt=0, description="how long a silent partition may hold windows open"
    )
    backfill: Duration = Field(
        default=86400.0, gt=0, description="how far back unreported windows are evaluated"
    )
    render_html: bool = True


class Config(_Strict):
    kafka: KafkaConfig
    database: DatabaseConfig = DatabaseConfig()
    ingest: IngestConfig = IngestConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    metrics: MetricsConfig = MetricsConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    models: dict[str, ModelConfig] = Field(min_length=1, description="a mapping of models")

    def model_specs(self) -> dict[str, ModelSpec]:
        return {name: m.spec(name) for name, m in self.models.items()}

    def detector_specs(self) -> dict[str, DetectorSpec]:
        """The models watched by streaming detectors, and how."""
        specs = {name: m.detector_spec(name) for name, m in self.models.items()}
        return {name: spec for name, spec in specs.items() if spec is not None}

    def label_specs(self) -> dict[str, LabelSpec]:
        """The models whose labels are joined, and how."""
        specs = {name: m.label_spec(name) for name, m in self.models.items()}
        return {name: spec for name, spec in specs.items() if spec is not None}


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment and validate; ConfigError names each bad key."""
    env = os.environ if env is None else env
    if path is None:
        path = env.get(f"{ENV_PREFIX}CONFIG")
    if not path:
        raise ConfigError(["config: no file given (use --config FILE or DRIFTWATCH_CONFIG)"])
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"config: cannot read {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"config: {path} is not UTF-8 text"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"config: {path} is not valid YAML: {exc}".replace("\n", " ")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"config: {path} must hold a mapping at the top level"])
    apply_env_overrides(raw, env)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    top = set(Config.model_fields)
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].split("__")
        if path[0].lower() not in top:
            continue
        node = raw
        for i, part in enumerate(path):
            key = _match_key(node, part)
            if i == len(path) - 1:
                node[key] = _env_value(path, value)
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child


def _env_value(path: list[str], value: str) -> Any:
    """Typed fields are coerced by validation; free-form client options get YAML typing."""
    lowered = [p.lower() for p in path]
    if lowered[:1] == ["kafka"] and lowered[1:2] in (["consumer"], ["producer"], ["security"]):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def _match_key(node: dict[str, Any], part: str) -> str:
    for key in node:
        if isinstance(key, str) and key.lower() == part.lower():
            return key
    return part.lower()


def _describe(err: Mapping[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        expected = _expected(err["loc"])
        return f"config: {key}: missing" + (f"; expected {expected}" if expected else "")
    if err["type"] == "extra_forbidden":
        return f"config: {key}: unknown key"
    return f"config: {key}: {msg}"


def _expected(loc: tuple[Any, ...]) -> str | None:
    model: Any = Config
    field = None
    for part in loc:
        if typing.get_origin(model) is dict:
            model = typing.get_args(model)[1]  # ``part`` is a user's key, e.g. a model name
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        field = fields[part]
        model = field.annotation
    return None if field is None else field.description
