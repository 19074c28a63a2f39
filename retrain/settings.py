"""What the loop needs to know, free of the service's config classes (retrain never
imports service): each model's policy and gates, where runs work, how data is exported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from retrain.gates import GateSettings


@dataclass(frozen=True, slots=True)
class ModelRetrain:
    """One model's trigger policy, training data and gates (``models.<name>.retrain``)."""

    model: str
    gates: GateSettings
    enabled: bool = True
    drift_windows: int = 3
    on_degradation: bool = True
    on_concept_alarm: bool = True
    cron: str | None = None
    min_new_labels: int = 1000
    cooldown: timedelta = timedelta(hours=1)
    data_window: timedelta = timedelta(days=7)
    holdout_share: float = 0.2
    task: str = "classification"
    slice_feature: str | None = None
    train_timeout: timedelta = timedelta(hours=1)
    validate_timeout: timedelta = timedelta(minutes=30)
    pass_env: tuple[str, ...] = ()  # service variables a local job also receives
    # Types beyond retrain.artifacts.TRUSTED_TYPES the model's artifacts may name.
    trusted_types: tuple[str, ...] = ()
    estimator: str = "champion"  # champion: refit the production model; default: the trainer's
    search_budget: timedelta = timedelta(0)  # the trainer's hyperparameter search; 0: none
    min_train_rows: int = 1000  # labelled rows a run's data widens back to reach


@dataclass(frozen=True, slots=True)
class LoopSettings:
    workdir: Path
    artifacts_uri: str
    # Where jobs read a run's data (``retrain.data_uri``, e.g. s3://bucket/runs); None:
    # the export in the workdir itself (a local path, or a volume the jobs mount).
    data_uri: str | None = None

    def data_path(self, model: str, run_id: int) -> Path:
        """Where a run's training data is exported: one deterministic file per run. With
        ``data_uri`` set it is the staging copy, uploaded to :meth:`data_location`."""
        return self.workdir / f"{model}-{run_id}" / "data.parquet"

    def data_location(self, model: str, run_id: int) -> str:
        """Where the jobs read the run's data: ``data_uri``'s file, or :meth:`data_path`."""
        if self.data_uri is None:
            return str(self.data_path(model, run_id))
        return f"{self.data_uri.rstrip('/')}/{model}-{run_id}/data.parquet"

    def output_uri(self, model: str, run_id: int) -> str:
        return f"{self.artifacts_uri.rstrip('/')}/{model}/run-{run_id}/"


class Exporter(Protocol):
    """Writes the model's labelled events with event time in [start, end] to ``dest``
    (Parquet, the export format of the archive) and returns the rows written.

    It raises :class:`db.errors.StoreError` (the archive's errors derive from it):
    one with ``retriable`` true (an object store that did not answer) is retried
    on the next tick, any other fails the run. Any other exception is a bug, and
    is raised out of the tick. It runs after the pending step's commit, outside
    the run's row lock.
    """

    def __call__(self, model: str, start: datetime, end: datetime, dest: str) -> int: ...
