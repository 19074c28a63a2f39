"""Runs the service: wiring, signal handling and a clean shutdown."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from consumers.checkpoint import CheckpointStore
from consumers.dlq import DeadLetterPublisher
from consumers.events import EventDecoder
from consumers.loop import IngestLoop, IngestSettings
from db.migrate import require_current
from db.session import make_engine, make_session_factory
from service.config import Config
from service.errors import ServiceError
from service.kafka_clients import make_consumer, make_producer, wait_for_brokers
from service.metrics import IngestMetrics, Metrics

log = logging.getLogger(__name__)


def build_ingest_loop(cfg: Config, metrics: Metrics, config_path: str | None = None) -> IngestLoop:
    engine = make_engine(cfg.database.url)
    require_current(engine, f"driftwatch db upgrade --config {config_path or 'FILE'}")
    wait_for_brokers(cfg.kafka)
    consumer = make_consumer(cfg.kafka, cfg.ingest.start_from)
    settings = IngestSettings(
        topic=cfg.kafka.topics.predictions,
        flush_events=cfg.ingest.flush_events,
        flush_interval=cfg.ingest.flush_interval,
        max_clock_skew=cfg.ingest.max_clock_skew,
        start_from_earliest=cfg.ingest.start_from == "earliest",
    )
    return IngestLoop(
        consumer=consumer,
        decoder=EventDecoder(cfg.model_specs()),
        store=CheckpointStore(make_session_factory(engine), cfg.kafka.group_id, time.time),
        dead_letters=DeadLetterPublisher(
            lambda: make_producer(cfg.kafka), cfg.kafka.topics.dead_letter
        ),
        settings=settings,
        stats=IngestMetrics(metrics),
    )


def run(cfg: Config, config_path: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then flush and exit within the shutdown budget."""
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
    loop = build_ingest_loop(cfg, metrics, config_path)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    metrics.healthy.set(1)
    log.info("consuming %s as group %s", cfg.kafka.topics.predictions, cfg.kafka.group_id)
    try:
        loop.run(stop)
    finally:
        loop.dlq.close(timeout=2.0)
    log.info("stopped cleanly")
