"""How the consumer and the monitoring are built from the config: the ingestion loop and
what it writes through (dead letters, detectors, the archive), the window and
performance evaluators, and the archive's maintenance job."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from consumers.archive import ArchiveIntake, NoArchive
from consumers.checkpoint import CheckpointStore
from consumers.clients import ConsumerClient
from consumers.detectors import ALARM_RULE, DetectorObserver
from consumers.dlq import DeadLetterPublisher
from consumers.errors import ConsumerError
from consumers.events import EventDecoder
from consumers.late import LateJoinSpec, LateOutcome
from consumers.loop import IngestLoop, IngestSettings
from consumers.versions import VersionGate, registry_versions, stored_versions
from db.archive import ArchiveWriter, maintain
from db.migrate import require_current
from db.session import make_engine, make_session_factory
from drift.errors import ProfileMismatch
from drift.schema import ModelSpec
from service.config import Config
from service.errors import ServiceError
from service.kafka_clients import (
    check_copartitioned,
    dead_letter_producer,
    make_consumer,
    wait_for_brokers,
)
from service.metric_feeds import IngestMetrics
from service.metrics import Metrics
from service.monitoring.deadletters import Tally
from service.monitoring.evaluation import (
    DriftObserver,
    EvaluationSettings,
    Judging,
    WindowEvaluator,
)
from service.monitoring.late_labels import LateLabelJoin, LateModel, LateSettings
from service.monitoring.performance import (
    PerformanceEvaluator,
    PerformanceJudging,
    PerformanceObserver,
    PerformanceSettings,
    ReferenceValue,
)
from service.monitoring.watermarks import Finality

log = logging.getLogger(__name__)


def judging(cfg: Config) -> dict[str, Judging]:
    """Each model's evaluation settings from its config."""
    specs = cfg.model_specs()
    return {
        name: Judging(
            spec=specs[name],
            methods=m.drift_methods(),
            thresholds=m.drift_thresholds(),
            min_rows=m.drift.min_rows,
            min_rows_distance=m.drift.min_rows_distance,
            drift_share=m.drift.drift_share,
            bh_correction=m.drift.bh_correction,
            confirm_windows=m.drift.confirm_windows,
        )
        for name, m in cfg.models.items()
    }


def build_evaluator(
    cfg: Config,
    sessions: sessionmaker[Session],
    observer: DriftObserver | None = None,
    config_path: str | None = None,
) -> WindowEvaluator:
    """The window evaluator, with every model's current profile loaded and checked."""
    evaluator = WindowEvaluator(
        sessions,
        judging(cfg),
        EvaluationSettings(
            topic=cfg.kafka.topics.predictions,
            consumer_group=cfg.kafka.group_id,
            idle_partition_timeout=cfg.evaluation.idle_partition_timeout,
            backfill=cfg.evaluation.backfill,
            config_path=config_path,
        ),
        observer,
    )
    try:
        evaluator.refresh_profiles()
    except ProfileMismatch as exc:
        raise ServiceError(
            f"{exc}; rebuild it with driftwatch reference build --config "
            f"{config_path or 'CONFIG'} --model MODEL FILE, or fix models.*.features"
        ) from exc
    return evaluator


def performance_judging(cfg: Config) -> dict[str, PerformanceJudging]:
    """How each model whose labels are joined has its labelled windows judged."""
    models = {}
    for name, spec in cfg.label_specs().items():
        m = cfg.models[name]
        ref = m.labels.reference
        models[name] = PerformanceJudging(
            spec=spec,
            window_seconds=int(m.window),
            allowed_lateness=int(m.allowed_lateness),
            reference=None
            if ref is None
            else ReferenceValue(ref.accuracy, ref.mse, ref.n, ref.mse_variance),
            min_labeled=m.labels.min_labeled,
            alpha=m.labels.alpha,
            alarm_rule=ALARM_RULE in m.detectors(),
        )
    return models


def build_performance_evaluator(
    cfg: Config,
    sessions: sessionmaker[Session],
    observer: PerformanceObserver | None = None,
    finality: Finality | None = None,
) -> PerformanceEvaluator:
    """The evaluator of labelled windows, for every model whose labels are joined;
    ``finality`` is the drift evaluator's, so that both judge windows final alike."""
    models = performance_judging(cfg)
    settings = PerformanceSettings(
        predictions_topic=cfg.kafka.topics.predictions,
        labels_topic=cfg.kafka.topics.labels,
        consumer_group=cfg.kafka.group_id,
        idle_partition_timeout=cfg.evaluation.idle_partition_timeout,
        backfill=cfg.evaluation.backfill,
    )
    return PerformanceEvaluator(sessions, models, settings, observer, finality=finality)


def build_ingest_loop(
    cfg: Config,
    metrics: Metrics,
    config_path: str | None = None,
    specs: Mapping[str, ModelSpec] | None = None,
    tally: Tally | None = None,
) -> IngestLoop:
    """The consumer loop; ``specs`` (default: the config's) decide each model's bins;
    ``tally`` counts its events and dead letters for the dead-letter rate."""
    engine = make_engine(cfg.database.url)
    require_current(engine, f"driftwatch db upgrade --config {config_path or 'FILE'}")
    wait_for_brokers(cfg.kafka)
    consumer = make_consumer(cfg.kafka, cfg.ingest.start_from)
    label_specs = cfg.label_specs()
    topics = cfg.kafka.topics
    if label_specs:
        try:
            check_copartitioned(consumer, topics.predictions, topics.labels)
        except ServiceError:
            consumer.close(autocommit=False)
            raise
    observer = build_detectors(cfg) if label_specs else None
    settings = IngestSettings(
        topic=topics.predictions,
        labels_topic=topics.labels if label_specs else None,
        flush_events=cfg.ingest.flush_events,
        flush_interval=cfg.ingest.flush_interval,
        max_flush_share=cfg.ingest.max_flush_share,
        max_clock_skew=cfg.ingest.max_clock_skew,
        start_from_earliest=cfg.ingest.start_from == "earliest",
        caps=cfg.ingest.caps(),
        hold_backlog=cfg.ingest.hold_backlog,
        late_horizon=cfg.evaluation.backfill,
    )
    sessions = make_session_factory(engine)

    def new_consumer() -> ConsumerClient:
        try:
            return make_consumer(cfg.kafka, cfg.ingest.start_from)
        except ServiceError as exc:
            raise ConsumerError(str(exc)) from exc

    return IngestLoop(
        consumer=consumer,
        decoder=EventDecoder(specs or cfg.model_specs()),
        store=CheckpointStore(sessions, cfg.kafka.group_id, time.time),
        dead_letters=build_dead_letters(cfg),
        settings=settings,
        stats=IngestMetrics(metrics, cfg.models, tally),
        label_specs=label_specs,
        join_observer=observer,
        archive=build_archive(cfg, metrics.archive_compaction_failures.inc),
        versions=VersionGate(
            cfg.ingest.max_versions,
            registry_versions(sessions),
            stored=stored_versions(sessions),
        ),
        new_consumer=new_consumer if cfg.ingest.recycle_stalled_consumer else None,
    )


def build_dead_letters(cfg: Config) -> DeadLetterPublisher:
    """The dead-letter publisher; its producer is created when first needed."""
    return DeadLetterPublisher(
        lambda: dead_letter_producer(cfg.kafka), cfg.kafka.topics.dead_letter
    )


def build_detectors(cfg: Config) -> DetectorObserver | None:
    """The streaming detectors on the joined pairs, or None when no model has any."""
    for name, m in cfg.models.items():
        if m.labels.enabled and m.labels.detectors is None and not m.detectors():
            log.info(
                "model %s: no concept-drift detectors; a regression's need "
                "models.%s.labels.reference.mse as their loss scale",
                name,
                name,
            )
    specs = cfg.detector_specs()
    return DetectorObserver(specs) if specs else None


def archived_models(cfg: Config) -> list[str]:
    return [name for name, m in cfg.models.items() if m.archive.enabled]


def build_archive(cfg: Config, compaction_failed: Callable[[], None]) -> ArchiveIntake:
    """What the ingestion loop archives through; a no-op when no model is archived."""
    models = archived_models(cfg)
    if not models:
        return NoArchive()
    settings = cfg.archive.settings()
    writer = ArchiveWriter(settings, cfg.kafka.group_id, compaction_failed)
    return ArchiveIntake(writer, models, settings.append_workers)


def archive_maintenance(cfg: Config) -> Callable[[], None] | None:
    """Retention, compaction and vacuum of the archive tables; None when nothing is archived.

    The scheduler runs it on the leader only (every ``archive.compact_interval``).
    Each step commits through the Delta log, so two replicas would not corrupt a
    table; but both would rewrite the same files and all but one commit would
    lose the race and be thrown away, so one replica does it. A failure
    (:class:`ArchiveError`) is retried at the next run.
    """
    models = archived_models(cfg)
    if not models:
        return None
    settings = cfg.archive.settings()

    def tick() -> None:
        done = maintain(settings, models, datetime.now(UTC))
        log.info(
            "archive maintenance: %d rows past retention deleted, %d files compacted, %d vacuumed",
            done.deleted_rows,
            done.compacted_files,
            done.vacuumed_files,
        )

    return tick


def build_late_labels(
    cfg: Config,
    sessions: sessionmaker[Session],
    count: Callable[[str, LateOutcome, int], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    on_held: Callable[[str], None] | None = None,
) -> LateLabelJoin | None:
    """The late-label join of every model whose labels are joined and archived; None
    when ``late_labels`` is off or no model qualifies."""
    late = cfg.late_labels
    archived = set(archived_models(cfg))
    models = {
        name: LateModel(
            LateJoinSpec(
                j.spec, j.window_seconds, float(cfg.models[name].allowed_lateness), late.max_delay
            ),
            j,
        )
        for name, j in performance_judging(cfg).items()
        if name in archived
    }
    if not late.enabled or not models:
        return None
    settings = LateSettings(
        predictions_topic=cfg.kafka.topics.predictions,
        labels_topic=cfg.kafka.topics.labels,
        consumer_group=cfg.kafka.group_id,
        max_rows=late.max_rows,
        deadline=late.deadline,
    )
    extra: dict[str, Any] = {}
    if count is not None:
        extra["count"] = count
    if on_step is not None:
        extra["on_step"] = on_step
    if on_held is not None:
        extra["on_held"] = on_held
    return LateLabelJoin(sessions, cfg.archive.settings(), models, settings, **extra)
