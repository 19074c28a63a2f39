"""The model registry: every version of every model, one production version per model.

A version is an artifact (URI + sha256 of its bytes) with a stage:
``candidate`` (produced by a run, or registered by hand beside a champion),
``canary``, ``production``, ``archived`` or ``rejected``. A partial unique
index keeps at most one ``production`` row per model, on SQLite and
PostgreSQL alike, so no race between replicas can promote two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, BigId, UTCDateTime
from db.errors import StoreError, translated, violates
from db.repository import Repository, savepoint


class Stage(StrEnum):
    CANDIDATE = "candidate"
    CANARY = "canary"
    PRODUCTION = "production"
    ARCHIVED = "archived"
    REJECTED = "rejected"


class VersionExists(StoreError):
    """The (model, version) is registered already, with another URI or sha256."""


class ProductionExists(StoreError):
    """The model has a production version already; a second one is refused."""


class ModelVersionRow(Base):
    """One version of a model. ``metrics`` is JSON (the trainer's holdout metrics);
    ``run_id``, ``data_from`` and ``data_to`` say which run made it, on what data."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model", "version", name="uq_model_versions_version"),
        Index(
            "uq_model_versions_production",
            "model",
            unique=True,
            sqlite_where=text("stage = 'production'"),
            postgresql_where=text("stage = 'production'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(200))
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("retrain_runs.id", ondelete="SET NULL"))
    data_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # JSON: what the trainer fitted (estimator, where it came from, parameters, rows,
    # seconds); None for a version registered by hand.
    training: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def training_record(self) -> dict[str, Any] | None:
        if self.training is None:
            return None
        loaded: dict[str, Any] = json.loads(self.training)
        return loaded

    @property
    def metric_values(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.metrics)
        return loaded


@translated
class RegistryRepository(Repository[ModelVersionRow]):
    row = ModelVersionRow

    def register(
        self,
        model: str,
        version: str,
        uri: str,
        sha256: str,
        stage: Stage,
        now: datetime,
        *,
        metrics: Mapping[str, Any] | None = None,
        run_id: int | None = None,
        data_from: datetime | None = None,
        data_to: datetime | None = None,
        training: Mapping[str, Any] | None = None,
    ) -> ModelVersionRow:
        """Add a version; registering the same (model, version, uri, sha256) again returns
        the stored row (a retried tick), anything else under that version is refused."""
        stored = self.get(model, version)
        if stored is not None:
            return self._same(stored, uri, sha256)
        row = ModelVersionRow(
            model=model,
            version=version,
            uri=uri,
            sha256=sha256,
            stage=str(stage),
            metrics=json.dumps(dict(metrics or {}), sort_keys=True),
            run_id=run_id,
            data_from=data_from,
            data_to=data_to,
            training=None if training is None else json.dumps(dict(training), sort_keys=True),
            created_at=now,
            updated_at=now,
        )
        try:
            with savepoint(self.session):
                self._add(row)
        except IntegrityError as exc:
            table = ModelVersionRow.__table__
            if violates(exc, table, "uq_model_versions_production"):
                raise ProductionExists(f"model {model} has a production version already") from exc
            if violates(exc, table, "uq_model_versions_version"):
                raced = self.get(model, version)
                assert raced is not None
                return self._same(raced, uri, sha256)
            raise
        return row

    @staticmethod
    def _same(stored: ModelVersionRow, uri: str, sha256: str) -> ModelVersionRow:
        if (stored.uri, stored.sha256) != (uri, sha256):
            raise VersionExists(
                f"{stored.model} version {stored.version} is registered already with "
                f"{stored.uri} (sha256 {stored.sha256[:12]}...)"
            )
        return stored

    def get(self, model: str, version: str) -> ModelVersionRow | None:
        v = ModelVersionRow
        return self._one(select(v).where(v.model == model, v.version == version))

    def production(self, model: str) -> ModelVersionRow | None:
        v = ModelVersionRow
        return self._one(select(v).where(v.model == model, v.stage == str(Stage.PRODUCTION)))

    def set_stage(self, row: ModelVersionRow, stage: Stage, now: datetime) -> None:
        try:
            # Changed inside the savepoint: begin_nested() flushes pending changes first,
            # and a refused change there would lose the caller's whole transaction.
            with savepoint(self.session):
                row.stage = str(stage)
                row.updated_at = now
                self.session.flush()
        except IntegrityError as exc:
            if violates(exc, ModelVersionRow.__table__, "uq_model_versions_production"):
                raise ProductionExists(
                    f"model {row.model} has a production version already"
                ) from exc
            raise

    def versions(self, model: str | None = None) -> list[ModelVersionRow]:
        """Every version, per model oldest first."""
        v = ModelVersionRow
        stmt = select(v).order_by(v.model, v.id)
        if model is not None:
            stmt = stmt.where(v.model == model)
        return self._list(stmt)
