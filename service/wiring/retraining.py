"""Wiring of the retraining loop: the config's ``retrain`` sections turned into the
policy, the run driver, its executor and the archive export it trains on."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from db.archive import export_labeled
from db.runs import RunRepository
from db.session import transaction
from drift.schema import FeatureKind
from retrain.executors import make_executor
from retrain.executors.base import Executor
from retrain.executors.workdir import sweep
from retrain.exports import Exports
from retrain.gates import GateSettings, MetricGate
from retrain.isolation import step_each
from retrain.lifecycle import Loop
from retrain.policy import TriggerPolicy
from retrain.runs import OnAccepted, RunDriver, RunObserver
from retrain.settings import Exporter, LoopSettings, ModelRetrain
from service.config import Config
from service.errors import ConfigError

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def absolute_uri(uri: str) -> str:
    """A local path made absolute (jobs and services run elsewhere); other URIs as they are."""
    if "://" in uri:
        return uri
    return str(Path(uri).resolve())


def model_settings(cfg: Config) -> dict[str, ModelRetrain]:
    """Every model's retrain settings; a slice feature must be one of its categorical features."""
    out: dict[str, ModelRetrain] = {}
    problems: list[str] = []
    for name, m in cfg.models.items():
        r = m.retrain
        if r.pass_env and cfg.retrain.executor == "kubernetes":
            problems.append(
                f"config: models.{name}.retrain.pass_env: only the local executor passes the "
                "service's variables; give a Kubernetes Job its variables in the Job template "
                "(env, or envFrom a Secret)"
            )
        if r.slice_feature is not None:
            feature = m.features.get(r.slice_feature)
            if feature is None or feature.type is not FeatureKind.CATEGORICAL:
                categorical = [
                    f for f, c in m.features.items() if c.type is FeatureKind.CATEGORICAL
                ]
                problems.append(
                    f"config: models.{name}.retrain.slice_feature: {r.slice_feature!r} is not a "
                    f"categorical feature of the model (have {categorical})"
                )
                continue
        out[name] = ModelRetrain(
            model=name,
            gates=GateSettings(
                tuple(
                    MetricGate(metric, g.min_delta, g.max_degradation)
                    for metric, g in r.gates.items()
                ),
                min_holdout=r.min_holdout,
                slice_max_degradation=r.slice_max_degradation if r.slice_feature else None,
            ),
            enabled=r.enabled,
            drift_windows=r.drift_windows,
            on_degradation=r.on_degradation,
            on_concept_alarm=r.on_concept_alarm,
            cron=r.cron,
            min_new_labels=r.min_new_labels,
            cooldown=timedelta(seconds=r.cooldown),
            data_window=timedelta(seconds=r.data_window),
            holdout_share=r.holdout_share,
            task=str(r.task),
            slice_feature=r.slice_feature,
            train_timeout=timedelta(seconds=r.train_timeout),
            validate_timeout=timedelta(seconds=r.validate_timeout),
            pass_env=tuple(r.pass_env),
            trusted_types=tuple(r.trusted_types),
            estimator=r.estimator,
            search_budget=timedelta(seconds=r.search_budget),
            min_train_rows=r.min_train_rows,
        )
    if problems:
        raise ConfigError(problems)
    return out


def archive_exporter(cfg: Config) -> Exporter:
    """The labelled-event archive's export, as the loop calls it (event time in [start, end))."""
    settings = cfg.archive.settings()
    specs = cfg.model_specs()

    def export(model: str, start: datetime, end: datetime, dest: str) -> int:
        return export_labeled(settings, specs[model], start, end, dest).rows

    return export


def _ignore() -> object:
    return None


@dataclass(frozen=True)
class Retraining:
    policy: TriggerPolicy
    driver: RunDriver
    sweep: Callable[[], object] = _ignore

    def tick(self) -> None:
        """Decide new causes, advance every active run one step, then delete what runs
        final for ``retrain.keep_finished`` left in the workdir. Each part runs whatever
        an earlier one raised (a model's failing decision must not stall every run);
        the first error is raised after them."""
        parts: dict[str, Callable[[], object]] = {
            "trigger policy": self.policy.tick,
            "run driver": self.driver.tick,
            "workdir sweep": self.sweep,
        }
        _, error = step_each(parts, lambda part: parts[part](), "retraining part")
        if error is not None:
            raise error

    def close(self) -> None:
        """Stop following jobs (the Kubernetes executor's watch); runs go on."""
        self.driver.loop.executor.close()


def workdir_sweeper(
    cfg: Config, sessions: sessionmaker[Session], clock: Callable[[], datetime]
) -> Callable[[], object]:
    """The clean-up of ``retrain.workdir`` (:mod:`retrain.executors.workdir`)."""
    workdir = Path(cfg.retrain.workdir).resolve()
    keep = timedelta(seconds=cfg.retrain.keep_finished)

    def finished_at(ids: Iterable[int]) -> dict[int, datetime]:
        with transaction(sessions) as session:
            runs = RunRepository(session)
            rows = [runs.get(run_id) for run_id in sorted(ids)]
            return {r.id: r.finished_at for r in rows if r and r.finished_at and not r.active}

    return lambda: sweep(workdir, finished_at, clock(), keep)


def build_retraining(
    cfg: Config,
    sessions: sessionmaker[Session],
    *,
    executor: Executor | None = None,
    exporter: Exporter | None = None,
    clock: Callable[[], datetime] = utc_now,
    observer: RunObserver | None = None,
    on_watch_error: Callable[[str], None] | None = None,
    on_accepted: OnAccepted | None = None,
    exports: Exports | None = None,
) -> Retraining:
    """The policy and the run driver; ``observer`` hears of runs the driver finishes,
    ``on_watch_error`` of the Kubernetes executor's failed watches, ``on_accepted`` (the
    rollout driver's) of each run accepted, in the transaction of its verdict. Exports
    run on the tick's thread unless ``exports`` says otherwise (:mod:`retrain.exports`)."""
    models = model_settings(cfg)
    # Jobs run in a directory of their own: relative paths are made absolute here.
    data_uri = cfg.retrain.data_uri
    settings = LoopSettings(
        Path(cfg.retrain.workdir).resolve(),
        absolute_uri(cfg.retrain.artifacts_uri),
        None if data_uri is None else absolute_uri(data_uri),
    )
    loop = Loop(
        executor or make_executor(cfg.retrain.executor, cfg.retrain, on_watch_error=on_watch_error),
        models,
        settings,
        exporter or archive_exporter(cfg),
        clock,
    )
    driver = RunDriver(sessions, loop, observer=observer, on_accepted=on_accepted, exports=exports)
    return Retraining(
        TriggerPolicy(sessions, models, clock), driver, workdir_sweeper(cfg, sessions, clock)
    )
