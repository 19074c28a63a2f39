"""The ingestion loop on a thread of the test process, for tests that need its metrics.

Beside it, as in ``driftwatch run``, the replica's stall watch ticks on a thread of
its own: a client that stops fetching is replaced here as it is in the service.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from consumers.loop import IngestLoop
from db.session import make_engine, make_session_factory
from service.config import load_config
from service.metrics import Metrics
from service.monitoring.deadletters import Tally
from service.wiring.monitoring import build_ingest_loop
from service.wiring.watches import broker_ends, build_tally, build_watches

log = logging.getLogger(__name__)


class InProcessService:
    def __init__(self, config: Path, tally: Tally | None = None) -> None:
        cfg = load_config(config, env={})
        self.metrics = Metrics()
        self.loop: IngestLoop = build_ingest_loop(cfg, self.metrics, tally=tally)
        self._engine = make_engine(cfg.database.url)
        self._ends = broker_ends(cfg)
        self._watches = build_watches(
            cfg,
            make_session_factory(self._engine),
            lambda: self.loop.progress,
            build_tally(cfg),  # the test's tally, if any, is the loop's alone
            self.loop.recycle,
            self._ends,
        )
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._watch = threading.Thread(target=self._watch_stalls, daemon=True)
        self._thread.start()
        self._watch.start()

    def _run(self) -> None:
        try:
            self.loop.run(self._stop)
        except BaseException as exc:  # surfaced to the test by stop()
            self.error = exc

    def _watch_stalls(self) -> None:
        while not self._stop.wait(self._watches.interval):
            try:
                self._watches.stalls.tick()
            except Exception:  # as the scheduler does: logged, tried again next time
                log.exception("stall watch failed")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._watch.join(timeout)
        self._ends.close()
        self.loop.dlq.close(timeout=2.0)
        self._engine.dispose()
        if self.error is not None:
            raise self.error
