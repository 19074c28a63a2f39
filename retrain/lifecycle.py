"""The run lifecycle's vocabulary: its phases, what a phase handler decides (a
:class:`Step`), what it works with (a :class:`Loop`) and its signature
(:data:`Handler`).

:mod:`retrain.phases` holds one handler per active phase and
:mod:`retrain.runs` the driver that commits a step and then acts on it; both
import these types from here, and neither imports the other's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy.orm import Session

from db.registry import RegistryRepository
from db.runs import RetrainRunRow
from retrain.executors.base import Executor, JobSpec, Mode
from retrain.settings import Exporter, LoopSettings, ModelRetrain


class Phase(StrEnum):
    PENDING = "pending"
    TRAINING = "training"
    VALIDATING = "validating"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Phase.ACCEPTED, Phase.REJECTED, Phase.FAILED, Phase.CANCELLED})

Action = Callable[[], None]


@dataclass(frozen=True)
class Export:
    """An export found due: the model's labelled events with event time in [start, end],
    written to ``dest`` (the run's data file, which exists only once the export is done)."""

    model: str
    start: datetime
    end: datetime
    dest: Path
    # Where the file is uploaded once written (``retrain.data_uri``), None: it stays at dest.
    upload: str | None = None


@dataclass(frozen=True)
class ExportFailure:
    """Why an export wrote no file; ``retriable`` says whether a later tick may succeed
    (its ``reason`` is then the error alone, told again if it keeps failing)."""

    reason: str
    retriable: bool


@dataclass
class Step:
    """What a handler decided: the phase it moved the run to (None: stays), why, and
    what to do once that is committed: ``act``, ``export`` the run's data, then
    ``launch`` that job and record it."""

    phase: Phase | None = None
    note: str = ""
    act: Action | None = None
    export: Export | None = None
    launch: JobSpec | None = None


@dataclass(frozen=True)
class Loop:
    """Everything a handler works with. ``clock`` returns an aware UTC datetime."""

    executor: Executor
    models: Mapping[str, ModelRetrain]
    settings: LoopSettings
    exporter: Exporter
    clock: Callable[[], datetime]

    def train_spec(self, run: RetrainRunRow, session: Session) -> JobSpec:
        """The training job: it refits the run's champion (or the trainer's default
        estimator), so it is told where the champion is, as validation is."""
        m = self.models[run.model]
        env = self._common_env(m)
        env["DRIFTWATCH_ESTIMATOR"] = m.estimator
        if m.search_budget > timedelta(0):
            env["DRIFTWATCH_SEARCH_SECONDS"] = f"{m.search_budget.total_seconds():g}"
        self._versions(env, session, (("CHAMPION", run.champion_version_id),))
        return JobSpec(
            run_id=run.id,
            model=run.model,
            mode=Mode.TRAIN,
            data_uri=self.settings.data_location(run.model, run.id),
            output_uri=self.settings.output_uri(run.model, run.id),
            timeout=m.train_timeout,
            env=env,
            pass_env=m.pass_env,
        )

    def validate_spec(self, run: RetrainRunRow, session: Session) -> JobSpec:
        m = self.models[run.model]
        env = self._common_env(m)
        self._versions(
            env,
            session,
            (("CHAMPION", run.champion_version_id), ("CANDIDATE", run.candidate_version_id)),
        )
        if m.slice_feature:
            env["DRIFTWATCH_SLICE_FEATURE"] = m.slice_feature
        return JobSpec(
            run_id=run.id,
            model=run.model,
            mode=Mode.VALIDATE,
            data_uri=self.settings.data_location(run.model, run.id),
            output_uri=self.settings.output_uri(run.model, run.id),
            timeout=m.validate_timeout,
            env=env,
            pass_env=m.pass_env,
        )

    @staticmethod
    def _versions(
        env: dict[str, str], session: Session, sides: tuple[tuple[str, int | None], ...]
    ) -> None:
        registry = RegistryRepository(session)
        for side, version_id in sides:
            version = registry.by_id(version_id) if version_id is not None else None
            if version is not None:
                env[f"DRIFTWATCH_{side}_URI"] = version.uri
                env[f"DRIFTWATCH_{side}_SHA256"] = version.sha256

    @staticmethod
    def _common_env(m: ModelRetrain) -> dict[str, str]:
        """What every job of the model gets, training and validation alike, whatever the
        executor: both load artifacts that may name the model's own trusted types."""
        env = {"DRIFTWATCH_TASK": m.task, "DRIFTWATCH_HOLDOUT_SHARE": repr(m.holdout_share)}
        if m.trusted_types:
            env["DRIFTWATCH_TRUSTED_TYPES"] = ",".join(m.trusted_types)
        return env


Handler = Callable[[Loop, Session, RetrainRunRow], Step]
