"""Runs the service that :mod:`service.wiring.root` builds: starts its parts, handles
SIGTERM and SIGINT, and shuts down cleanly."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from service.api.app import create_app
from service.api.deps import ApiDeps
from service.api.server import ApiServer, serve
from service.config import Config
from service.errors import ServiceError
from service.metrics import Metrics
from service.process import limit_malloc_arenas, pin_mmap_threshold, settle_heap
from service.scheduler import build_scheduler
from service.wiring.root import build_service

log = logging.getLogger(__name__)


def serve_metrics(cfg: Config, metrics: Metrics) -> None:
    """Serve ``/metrics`` on ``metrics.port`` unless it is 0."""
    if not cfg.metrics.port:
        return
    try:
        metrics.serve(cfg.metrics.host, cfg.metrics.port)
    except OSError as exc:
        raise ServiceError(
            f"cannot serve metrics on {cfg.metrics.host}:{cfg.metrics.port} "
            f"(metrics.host, metrics.port): {exc.strerror or exc}"
        ) from exc
    log.info("metrics on http://%s:%d/metrics", cfg.metrics.host, cfg.metrics.port)


def start_api(cfg: Config, deps: ApiDeps, wait: Callable[[float], bool]) -> ApiServer:
    """Serve the API on ``api.host``:``api.port``; return once it listens."""
    server = serve(create_app(deps), cfg.api.host, cfg.api.port, wait=wait)
    log.info("API on http://%s:%d (OpenAPI at /docs)", cfg.api.host, server.port)
    return server


def run(cfg: Config, config_path: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then flush and exit within the shutdown budget."""
    limit_malloc_arenas()
    pin_mmap_threshold()
    metrics = Metrics()
    metrics.healthy.set(0)
    serve_metrics(cfg, metrics)
    service = build_service(cfg, metrics, config_path)
    scheduler = build_scheduler(service.jobs, metrics, service.elector)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    metrics.healthy.set(1)
    log.info("consuming %s as group %s", cfg.kafka.topics.predictions, cfg.kafka.group_id)
    service.elector.start()
    scheduler.start()
    try:
        if service.api is not None:
            service.closers.append(start_api(cfg, service.api, stop.wait).close)
        settle_heap()
        service.loop.run(stop)
    finally:
        # Not waited for here: leadership is given up and the parts closed at once. A job
        # in flight still ends before the process exits (the interpreter joins the
        # scheduler's worker threads): closing the renderer kills a rendering in flight.
        scheduler.shutdown(wait=False)
        service.elector.stop()
        clean = service.close()
        service.loop.dlq.close(timeout=2.0)
    if clean:
        log.info("stopped cleanly")
    else:
        log.warning("stopped, abandoning work in flight (it is redone after a restart)")
