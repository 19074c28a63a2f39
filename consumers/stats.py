"""What the ingestion loop reports, as a protocol the service implements with metrics."""

from __future__ import annotations

from typing import Protocol


class IngestStats(Protocol):
    def consumed(self, model: str, n: int) -> None: ...
    def invalid(self, reason: str) -> None: ...
    def late(self, model: str, n: int) -> None: ...
    def flushed(self, seconds: float, events: int) -> None: ...
    def flush_failed(self, reason: str) -> None: ...
    def offset_conflicts(self, n: int) -> None: ...
    def recycled(self) -> None: ...
    def lag(self, topic: str, partition: int, lag: int) -> None: ...
    def healthy(self, ok: bool) -> None: ...
    def labels(self, model: str, outcome: str, n: int) -> None: ...
    def unlabeled(self, model: str, n: int) -> None: ...
    def alarms(self, model: str, model_version: str, detector: str, n: int) -> None: ...


class NullStats:
    """Reports nothing; for library use, tests and benchmarks."""

    def consumed(self, model: str, n: int) -> None:
        pass

    def invalid(self, reason: str) -> None:
        pass

    def late(self, model: str, n: int) -> None:
        pass

    def flushed(self, seconds: float, events: int) -> None:
        pass

    def flush_failed(self, reason: str) -> None:
        pass

    def offset_conflicts(self, n: int) -> None:
        pass

    def recycled(self) -> None:
        pass

    def lag(self, topic: str, partition: int, lag: int) -> None:
        pass

    def healthy(self, ok: bool) -> None:
        pass

    def labels(self, model: str, outcome: str, n: int) -> None:
        pass

    def unlabeled(self, model: str, n: int) -> None:
        pass

    def alarms(self, model: str, model_version: str, detector: str, n: int) -> None:
        pass
