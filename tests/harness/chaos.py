"""The crash scenario shared by the chaos tests and ``bench/chaos_ingest.py``.

Events are produced up front; ``driftwatch run`` is started, SIGKILLed at random
moments while it makes progress, and restarted. A part of the stream may be
held back (:class:`HeldBack`) and produced only before the last run, so that
every kill lands mid-stream by construction, however fast the machine. At the
end SQL is compared, window by window, with what the producer had
acknowledged. With labels, the joined outcomes are compared too, confusion
cell by confusion cell. With an archive, its Delta tables are read with
deltalake alone and every produced message must be in them once: lost counts
the messages missing, duplicated the rows beyond one per (topic, partition,
offset).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from tests.harness.labels import Cell, stored_cells
from tests.harness.scenario import (
    ServiceProcess,
    compare,
    stored_counts,
    wait_for_count,
    wait_for_total,
)


class DeferredProducer:
    """Takes what a producer function sends and sends it for real later (``release``)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, Any, Any]] = []

    def send(self, topic: str, key: Any = None, value: Any = None) -> _Sent:
        self.records.append((topic, key, value))
        return _Sent()

    def flush(self) -> None:
        pass

    def release(self, producer: Any) -> None:
        futures = [producer.send(t, key=k, value=v) for t, k, v in self.records]
        producer.flush()
        for f in futures:
            f.get(timeout=30)


class _Sent:
    def get(self, timeout: float | None = None) -> None:
        return None


@dataclass(frozen=True)
class HeldBack:
    """``predictions`` events of the stream that ``release`` produces before the last run."""

    predictions: int
    release: Callable[[], None] = field(repr=False)


@dataclass(frozen=True)
class ChaosResult:
    sent: int
    stored: int
    lost: int
    duplicated: int
    kills: int
    seconds: float
    stored_at_kills: tuple[int, ...]  # SQL totals right after each kill
    labeled_sent: int = 0
    labeled_stored: int = 0
    labels_lost: int = 0
    labels_duplicated: int = 0
    archived: int = 0
    archive_lost: int = 0
    archive_duplicated: int = 0


def archive_counts(uri: str, models: set[str], kind: str) -> tuple[int, int, set[str]]:
    """Rows, distinct (topic, partition, offset) and distinct event ids in the archive."""
    rows, sources, ids = 0, set(), set()
    for model in models:
        try:
            table = DeltaTable(f"{uri}/{model}/{kind}")
        except TableNotFoundError:
            continue
        frame = table.to_pyarrow_table(columns=["event_id", "topic", "partition", "offset"])
        rows += frame.num_rows
        columns = [frame.column(n).to_pylist() for n in ("topic", "partition", "offset")]
        sources.update(zip(*columns, strict=True))
        ids.update(frame.column("event_id").to_pylist())
    return rows, len(sources), ids


def run_chaos(
    config: Path,
    database_url: str,
    sent: Counter[tuple[str, str, int]],
    workdir: Path,
    kills: int,
    seed: int = 0,
    timeout: float = 600.0,
    cells: Counter[Cell] | None = None,
    archive_uri: str | None = None,
    labels_sent: int = 0,
    held_back: HeldBack | None = None,
) -> ChaosResult:
    rng = random.Random(seed)
    expected = sum(sent.values())
    available = expected - (held_back.predictions if held_back else 0)
    labeled = sum(cells.values()) if cells else 0
    started = time.monotonic()
    at_kills: list[int] = []
    for i in range(kills + 1):
        if i == kills and held_back is not None:
            held_back.release()
        svc = ServiceProcess(config, workdir / f"chaos-{i}.log")
        svc.start()
        if i == kills:
            wait_for_total(database_url, expected, timeout)
            if labeled:
                wait_for_count(lambda: sum(stored_cells(database_url).values()), labeled, timeout)
            svc.terminate()
            break
        # Kill only once this run has made progress, at a random point after it,
        # so every kill lands mid-stream rather than during start-up.
        before = sum(stored_counts(database_url).values())
        target = before + max(1, (available - before) // (kills - i + 1))
        wait_for_total(database_url, min(target, available), timeout, interval=0.02)
        time.sleep(rng.uniform(0.0, 0.05))
        svc.kill()
        at_kills.append(sum(stored_counts(database_url).values()))
    stored = stored_counts(database_url)
    lost, dup = compare(sent, stored)
    labels_lost = labels_dup = labeled_stored = 0
    if cells is not None:
        in_sql = stored_cells(database_url)
        labeled_stored = sum(in_sql.values())
        labels_lost, labels_dup = compare(cells, in_sql)
    archived = archive_lost = archive_dup = 0
    if archive_uri is not None:
        models = {model for model, _, _ in sent}
        for kind, messages in (("predictions", expected), ("labels", labels_sent)):
            rows, distinct, _ = archive_counts(archive_uri, models, kind)
            archived += rows
            archive_lost += messages - distinct
            archive_dup += rows - distinct
    return ChaosResult(
        expected,
        sum(stored.values()),
        lost,
        dup,
        len(at_kills),
        time.monotonic() - started,
        tuple(at_kills),
        labeled,
        labeled_stored,
        labels_lost,
        labels_dup,
        archived,
        archive_lost,
        archive_dup,
    )
