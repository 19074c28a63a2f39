"""The ingestion loop on a thread of the test process, for tests that need its metrics."""

from __future__ import annotations

import threading
from pathlib import Path

from consumers.loop import IngestLoop
from service.config import load_config
from service.metrics import Metrics
from service.monitoring.deadletters import Tally
from service.wiring.monitoring import build_ingest_loop


class InProcessService:
    def __init__(self, config: Path, tally: Tally | None = None) -> None:
        self.metrics = Metrics()
        self.loop: IngestLoop = build_ingest_loop(
            load_config(config, env={}), self.metrics, tally=tally
        )
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.loop.run(self._stop)
        except BaseException as exc:  # surfaced to the test by stop()
            self.error = exc

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.loop.dlq.close(timeout=2.0)
        if self.error is not None:
            raise self.error
