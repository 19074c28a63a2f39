"""The whole configuration and its service-level sections."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator, model_validator
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
from service.config.scheduler import LateLabelsConfig, LeaderConfig, RetentionConfig

# A model's name is a directory name (its runs' data and artifacts) and the value of the
# ``driftwatch/model`` label of its Jobs: Kubernetes' label-value syntax, ASCII only, fits
# both as it is (no '/', never '.' or '..', no lossy mapping that could merge two models).
MODEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", re.ASCII)
LOGGER_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


def _names_match(names: Iterable[str], pattern: re.Pattern[str], rule: str) -> None:
    """Raise ValueError naming the first of ``names`` that ``pattern`` does not match."""
    for name in names:
        if not pattern.fullmatch(name):
            raise ValueError(f"{name!r}: {rule}")


_PG_FORM = "postgresql+psycopg://user:password@host:5432/dbname"
# SQLAlchemy reads a bare postgresql:// as psycopg2, which is not installed; psycopg 3 is.
_PG_ALIASES = ("postgresql://", "postgres://")
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


class DatabaseConfig(Strict):
    url: str = Field(
        default="sqlite:///driftwatch.db",
        description=f"a sqlite:///PATH or {_PG_FORM} URL",
        repr=False,  # it may hold a password
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
        """The URL with its password hidden, fit for logs: in its user part, and as a
        query parameter (libpq takes ``?password=`` and ``?sslpassword=`` too)."""
        url = make_url(self.url)
        hidden = {k: "***" for k in url.query if k.lower() in _SECRET_PARAMETERS}
        return url.update_query_dict(hidden).render_as_string(hide_password=True)


class IngestConfig(Strict):
    flush_events: int = Field(default=20_000, gt=0)
    flush_interval: Duration = 2.0
    max_flush_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="the largest share of the consumer's time that flushes due by "
        "flush_interval may take: after a flush of d seconds the next one waits at least "
        "d / max_flush_share (flush_events still flushes at once)",
    )
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
    hold_backlog: int = Field(
        default=1_000,
        ge=1,
        description="messages waiting in a labels (predictions) partition before a "
        "predictions (labels) partition that runs a join_ttl ahead is paused for them",
    )
    recycle_stalled_consumer: bool = Field(
        default=True,
        description="replace the Kafka consumer of a replica stalled for "
        "alerts.stalled_after while the database and the dead-letter topic answer (the "
        "client stopped fetching); false leaves that to a restart",
    )

    def caps(self) -> StreamCaps:
        return StreamCaps(
            self.max_versions, CategoryCaps(self.max_categories, self.max_category_length)
        )


class MetricsConfig(Strict):
    # This port has no authentication: loopback unless the operator opens it on purpose.
    host: str = "127.0.0.1"
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
    render_timeout: Duration = Field(
        default=300.0,
        gt=0,
        description="the longest one report's rendering may take; past it the rendering "
        "process is killed and the report left unrendered (409 from the API)",
    )


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
    late_labels: LateLabelsConfig = LateLabelsConfig()
    log_level: LogLevel = "INFO"
    log_levels: dict[str, LogLevel] = Field(
        default_factory=dict,
        description="a mapping of logger name to level, over log_level and its defaults "
        "(e.g. kafka: INFO shows kafka-python's group and connection events, which are "
        "kept at WARNING otherwise)",
    )
    models: dict[str, ModelConfig] = Field(min_length=1, description="a mapping of models")

    @field_validator("log_levels")
    @classmethod
    def _logger_names(cls, v: dict[str, LogLevel]) -> dict[str, LogLevel]:
        rule = "a logger name is dotted identifiers, such as kafka or kafka.coordinator"
        _names_match(v, LOGGER_NAME, rule)
        return v

    @field_validator("models")
    @classmethod
    def _not_the_service(cls, v: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        _names_match(
            v,
            MODEL_NAME,
            "a model name must be 1 to 63 characters of letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (it becomes a directory name and a "
            "Kubernetes label value)",
        )
        if SERVICE_MODEL in v:
            raise ValueError(
                f"{SERVICE_MODEL} is the model name of the service's own alerts "
                "(consumer_stalled, dead_letter_rate); give the model another name"
            )
        return v

    @model_validator(mode="after")
    def _late_labels_fit(self) -> Config:
        late = self.late_labels
        if not late.enabled:
            return self
        if self.retention.enabled and late.max_delay > self.retention.sketches:
            raise ValueError(
                "late_labels.max_delay: a window's performance sketches are deleted after "
                f"retention.sketches ({self.retention.sketches:g}s); a label later than that "
                "has no window to join, so keep max_delay at most retention.sketches"
            )
        for name, m in self.models.items():
            if m.labels.enabled and m.archive.enabled and m.labels.join_ttl >= late.max_delay:
                raise ValueError(
                    f"models.{name}.labels.join_ttl: the horizon must be shorter than "
                    "late_labels.max_delay, the latest label the batch join takes"
                )
        return self

    @model_validator(mode="after")
    def _metrics_behind_auth(self) -> Config:
        # The separate metrics port cannot check a token: when metrics are closed they are
        # served only by the API's /metrics, to read tokens, and that port stays shut.
        if self.api.metrics_open:
            return self
        if not self.api.port:
            raise ValueError(
                "api.metrics_open: false serves metrics only on the API's /metrics; set api.port"
            )
        if self.metrics.port and "port" in self.metrics.model_fields_set:
            raise ValueError(
                "metrics.port: the metrics port has no authentication; set it to 0 when "
                "api.metrics_open is false (metrics are then on the API's /metrics)"
            )
        # Frozen sections: replaced, not assigned, so the default port is not opened.
        object.__setattr__(self, "metrics", self.metrics.model_copy(update={"port": 0}))
        return self

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
