"""What the ingestion loop (:mod:`consumers.loop`) is told: its topics, when it flushes,
how long it waits, and the caps on what the stream can make it keep."""

from __future__ import annotations

from dataclasses import dataclass

from consumers.versions import DEFAULT_CAPS, StreamCaps


@dataclass(frozen=True, slots=True)
class IngestSettings:
    topic: str
    labels_topic: str | None = None  # None: no label join
    flush_events: int = 20_000
    flush_interval: float = 2.0
    # Time-driven flushes are spaced so that they take at most this share of the loop.
    max_flush_share: float = 0.25
    max_clock_skew: float = 3600.0
    start_from_earliest: bool = True
    poll_timeout: float = 0.2
    max_backoff: float = 10.0
    shutdown_budget: float = 8.0
    caps: StreamCaps = DEFAULT_CAPS
    # Messages waiting in a partition before the other topic's may be held back for
    # them: far more than arrive between two polls in a steady state (LabelIntake.hold).
    hold_backlog: int = 1_000
    # Late events of windows older than this behind the watermark get no window row
    # (consumers.window.WindowAccumulator); the service passes evaluation.backfill.
    late_horizon: float | None = 86_400.0
