"""The whole configuration and its service-level sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from consumers.detectors import DetectorSpec
from consumers.labels import LabelSpec
from consumers.versions import MAX_CATEGORIES, MAX_CATEGORY_LENGTH, MAX_VERSIONS, StreamCaps
from drift.schema import ModelSpec
from drift.sketch import CategoryCaps
from service.config.alerts import SERVICE_MODEL, AlertsConfig
from service.config.api import ApiConfig
from service.config.archive import ArchiveConfig
from service.config.base import Duration, Strict
from service.config.kafka import KafkaConfig
from service.config.models import ModelConfig
from service.config.retrain import RetrainConfig
from service.config.scheduler import LeaderConfig, RetentionConfig

_PG_FORM = "postgresql+psycopg://user:password@host:5432/dbname"
# SQLAlchemy reads a bare postgresql:// as psycopg2, which is not installed; psycopg 3 is.
_PG_ALIASES = ("postgresql://", "postgres://")


class DatabaseConfig(Strict):
    url: str = Field(
        default="sqlite:///driftwatch.db",
        description=f"a sqlite:///PATH or {_PG_FORM} URL",
    )

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, v: str) -> str:
        for alias in _PG_ALIASES:
            if v.startswith(alias):
                return "postgresql+psycopg://" + v.removeprefix(alias)
        scheme = v.partition("://")[0]
        if scheme.startswith("postgresql+") and scheme != "postgresql+psycopg":
            driver = scheme.removeprefix("postgresql+")
            raise ValueError(
                f"driver {driver} is not the one installed; write {_PG_FORM} (or postgresql://...)"
            )
        if not scheme.startswith(("sqlite", "postgresql")):
            raise ValueError(f"expected a sqlite:///PATH or {_PG_FORM} URL")
        try:
            make_url(v)
        except ArgumentError:
            raise ValueError(f"not a database URL; expected sqlite:///PATH or {_PG_FORM}") from None
        return v

    @property
    def masked_url(self) -> str:
        """The URL with its password hidden, fit for logs."""
        return make_url(self.url).render_as_string(hide_password=True)


class IngestConfig(Strict):
    flush_events: int = Field(default=20_000, gt=0)
    flush_interval: Duration = 2.0
    max_clock_skew: Duration = 3600.0
    start_from: Literal["earliest", "latest"] = "earliest"
    # Caps on what the stream can make the consumer keep (consumers.versions).
    max_versions: int = Field(
        default=MAX_VERSIONS,
        ge=1,
        description="versions per model and window besides production and canary",
    )
    max_categories: int = Field(
        default=MAX_CATEGORIES,
        ge=1,
        description="distinct values kept per categorical column and window",
    )
    max_category_length: int = Field(
        default=MAX_CATEGORY_LENGTH,
        ge=1,
        description="the longest category value kept, in characters",
    )

    def caps(self) -> StreamCaps:
        return StreamCaps(
            self.max_versions, CategoryCaps(self.max_categories, self.max_category_length)
        )


class MetricsConfig(Strict):
    host: str = "0.0.0.0"
    port: int = Field(default=9108, ge=0, le=65535, description="a TCP port; 0 turns metrics off")


class EvaluationConfig(Strict):
    """When closed windows are evaluated (a scheduler job inside ``driftwatch run``)."""

    interval: Duration = Field(default=10.0, gt=0, description="a period such as 10s")
    idle_partition_timeout: Duration = Field(
        default=60.0, gt=0, description="how long a silent partition may hold windows open"
    )
    backfill: Duration = Field(
        default=86400.0, gt=0, description="how far back unreported windows are evaluated"
    )
    render_html: bool = True


class Config(Strict):
    kafka: KafkaConfig
    database: DatabaseConfig = DatabaseConfig()
    ingest: IngestConfig = IngestConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    metrics: MetricsConfig = MetricsConfig()
    retrain: RetrainConfig = RetrainConfig()
    archive: ArchiveConfig = ArchiveConfig()
    alerts: AlertsConfig = AlertsConfig()
    api: ApiConfig = ApiConfig()
    leader: LeaderConfig = LeaderConfig()
    retention: RetentionConfig = RetentionConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    models: dict[str, ModelConfig] = Field(min_length=1, description="a mapping of models")

    @field_validator("models")
    @classmethod
    def _not_the_service(cls, v: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        if SERVICE_MODEL in v:
            raise ValueError(
                f"{SERVICE_MODEL} is the model name of the service's own alerts "
                "(consumer_stalled, dead_letter_rate); give the model another name"
            )
        return v

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
