"""Runs the service: wiring, signal handling and a clean shutdown."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType

from sqlalchemy.orm import Session, sessionmaker

from consumers.checkpoint import CheckpointStore
from consumers.detectors import ALARM_RULE, DetectorObserver
from consumers.dlq import DeadLetterPublisher
from consumers.events import EventDecoder
from consumers.loop import IngestLoop, IngestSettings
from db.migrate import require_current
from db.session import make_engine, make_session_factory
from drift.errors import ProfileMismatch
from drift.schema import ModelSpec
from service.api.wiring import start_api
from service.cli_archive import build_archive
from service.config import Config
from service.deadletters import Tally
from service.errors import ServiceError
from service.evaluation import EvaluationSettings, Judging, WindowEvaluator
from service.kafka_clients import (
    check_copartitioned,
    dead_letter_producer,
    make_consumer,
    wait_for_brokers,
)
from service.leader import make_elector
from service.metric_feeds import IngestMetrics
from service.metrics import Metrics
from service.performance import (
    PerformanceEvaluator,
    PerformanceJudging,
    PerformanceSettings,
    ReferenceValue,
)
from service.process import limit_malloc_arenas, pin_mmap_threshold
from service.scheduler import build_scheduler
from service.watches import build_tally, build_watches
from service.watermarks import Finality

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
            drift_share=m.drift.drift_share,
            bh_correction=m.drift.bh_correction,
            confirm_windows=m.drift.confirm_windows,
        )
        for name, m in cfg.models.items()
    }


def build_evaluator(
    cfg: Config, sessions: sessionmaker[Session], metrics: Metrics | None
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
        ),
        metrics,
    )
    try:
        evaluator.refresh_profiles()
    except ProfileMismatch as exc:
        raise ServiceError(
            f"{exc}; rebuild it with driftwatch reference build, or fix models.*.features"
        ) from exc
    return evaluator


def build_performance_evaluator(
    cfg: Config,
    sessions: sessionmaker[Session],
    metrics: Metrics | None,
    finality: Finality | None = None,
) -> PerformanceEvaluator:
    """The evaluator of labelled windows, for every model whose labels are joined;
    ``finality`` is the drift evaluator's, so that both judge windows final alike."""
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
    settings = PerformanceSettings(
        predictions_topic=cfg.kafka.topics.predictions,
        labels_topic=cfg.kafka.topics.labels,
        consumer_group=cfg.kafka.group_id,
        idle_partition_timeout=cfg.evaluation.idle_partition_timeout,
        backfill=cfg.evaluation.backfill,
    )
    return PerformanceEvaluator(sessions, models, settings, metrics, finality=finality)


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
        max_clock_skew=cfg.ingest.max_clock_skew,
        start_from_earliest=cfg.ingest.start_from == "earliest",
    )
    return IngestLoop(
        consumer=consumer,
        decoder=EventDecoder(specs or cfg.model_specs()),
        store=CheckpointStore(make_session_factory(engine), cfg.kafka.group_id, time.time),
        dead_letters=build_dead_letters(cfg),
        settings=settings,
        stats=IngestMetrics(metrics, cfg.models, tally),
        label_specs=label_specs,
        join_observer=observer,
        archive=build_archive(cfg),
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


def run(cfg: Config, config_path: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then flush and exit within the shutdown budget."""
    limit_malloc_arenas()
    pin_mmap_threshold()
    metrics = Metrics()
    metrics.healthy.set(0)
    if cfg.metrics.port:
        try:
            metrics.serve(cfg.metrics.host, cfg.metrics.port)
        except OSError as exc:
            raise ServiceError(
                f"cannot serve metrics on {cfg.metrics.host}:{cfg.metrics.port} "
                f"(metrics.host, metrics.port): {exc.strerror or exc}"
            ) from exc
        log.info("metrics on http://%s:%d/metrics", cfg.metrics.host, cfg.metrics.port)
    engine = make_engine(cfg.database.url)
    require_current(engine, f"driftwatch db upgrade --config {config_path or 'FILE'}")
    sessions = make_session_factory(engine)
    evaluator = build_evaluator(cfg, sessions, metrics)
    tally = build_tally(cfg)
    loop = build_ingest_loop(cfg, metrics, config_path, evaluator.specs(), tally)
    evaluator.follow(lambda: loop.progress)
    watches = build_watches(cfg, sessions, lambda: loop.progress, tally)
    closers: list[Callable[[], None]] = []
    elector = make_elector(cfg)
    scheduler = build_scheduler(cfg, evaluator, loop, sessions, metrics, elector, closers, watches)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    metrics.healthy.set(1)
    log.info("consuming %s as group %s", cfg.kafka.topics.predictions, cfg.kafka.group_id)
    elector.start()
    scheduler.start()
    try:
        api = start_api(
            cfg,
            sessions,
            metrics.registry,
            lambda: loop.progress.partitions,
            watches.stalls.problem,
            stop.wait,
        )
        if api is not None:
            closers.append(api.close)
        loop.run(stop)
    finally:
        # A rendering in flight is abandoned, not awaited: it is redone after a restart.
        scheduler.shutdown(wait=False)
        elector.stop()
        for close in closers:
            close()
        loop.dlq.close(timeout=2.0)
    log.info("stopped cleanly")
