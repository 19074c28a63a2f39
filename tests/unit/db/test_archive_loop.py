"""The ingestion loop's archive hook: appended before the SQL commit, each event once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from kafka import TopicPartition

from consumers.archive import ArchiveIntake
from consumers.dlq import DeadLetterPublisher
from consumers.loop import IngestLoop, IngestSettings
from consumers.positions import Rebalance
from db.archive import ArchiveSettings, ArchiveWriter, Kind
from db.archive.errors import ArchiveUnavailable
from db.errors import StoreUnavailable
from db.session import make_engine, make_session_factory
from tests.harness.ingest import (
    DECODER,
    GROUP,
    TOPIC,
    FakeClock,
    FakeConsumer,
    FakeProducer,
    FlakyStore,
    Stats,
    T,
)


def ev(t: float) -> bytes:
    raw = {
        "event_id": f"e{t}",
        "model": "fraud",
        "model_version": "v1",
        "timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
        "features": {"amount": t - T},
        "prediction": 0.25,
    }
    return json.dumps(raw).encode()


PARTS = {0: [ev(T + 1), b"{bad", ev(T + 2), ev(T + 3)], 1: [ev(T + 4)]}


class FailingWriter(ArchiveWriter):
    """The real writer, told to fail its next appends as an unreachable object store does."""

    fail_appends = 0

    def append(self, *args: Any, **kwargs: Any) -> int:
        if self.fail_appends:
            self.fail_appends -= 1
            raise ArchiveUnavailable("object store unreachable")
        return super().append(*args, **kwargs)


def start(
    sql: Any, clock: FakeClock, settings: ArchiveSettings, writer: ArchiveWriter | None = None
) -> tuple[IngestLoop, FlakyStore]:
    """A fresh process: a new consumer over the same partitions, the same SQL and archive."""
    consumer = FakeConsumer(clock, [TopicPartition(TOPIC, p) for p in PARTS], 2)
    for p, values in PARTS.items():
        consumer.append(TopicPartition(TOPIC, p), *values)
    store = FlakyStore(sql, GROUP, clock)
    producer = FakeProducer()
    loop = IngestLoop(
        consumer,
        DECODER,
        store,
        DeadLetterPublisher(lambda: producer, "dead-letters"),
        IngestSettings(TOPIC, max_backoff=1.0),
        Stats(),
        clock=clock,
        archive=ArchiveIntake(writer or ArchiveWriter(settings, GROUP), ["fraud"]),
    )
    loop.consumer.subscribe([TOPIC], listener=Rebalance(loop))
    while batch := loop._poll(0):
        loop._process(batch)
    return loop, store


def test_a_crash_between_the_archive_append_and_the_sql_commit_archives_nothing_twice(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    sql = make_session_factory(engine)
    clock = FakeClock(T + 100.0)
    settings = ArchiveSettings(uri=str(tmp_path / "archive"))
    loop, store = start(sql, clock, settings)
    store.fail_commits = 1
    with pytest.raises(StoreUnavailable):
        loop.flush_once()  # the archive has the flush; SQL does not: as if killed here
    loop, _ = start(sql, clock, settings)
    loop.flush_once()
    frame = DeltaTable(settings.table_uri("fraud", Kind.PREDICTIONS)).to_pandas()
    got = sorted(zip(frame["partition"], frame["offset"], frame["event_id"], strict=True))
    # The invalid message at offset 1 is dead-lettered, never archived.
    assert got == [
        (0, 0, f"e{T + 1}"),
        (0, 2, f"e{T + 2}"),
        (0, 3, f"e{T + 3}"),
        (1, 0, f"e{T + 4}"),
    ]
    assert frame.set_index("event_id").loc[f"e{T + 3}", "amount"] == 3.0
    engine.dispose()


def test_a_failed_archive_append_rolls_the_sql_transaction_back_and_the_retry_stores_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The append runs beside the SQL work; its failure must still keep SQL from committing.
    engine = make_engine(sqlite_url)
    sql = make_session_factory(engine)
    clock = FakeClock(T + 100.0)
    settings = ArchiveSettings(uri=str(tmp_path / "archive"))
    writer = FailingWriter(settings, GROUP)
    writer.fail_appends = 1
    loop, store = start(sql, clock, settings, writer)
    with pytest.raises(ArchiveUnavailable):
        loop.flush_once()
    assert store.load(TOPIC, PARTS) == {}
    assert not Path(settings.table_uri("fraud", Kind.PREDICTIONS)).exists()
    loop.flush_once()
    assert {p: o.next_offset for p, o in store.load(TOPIC, PARTS).items()} == {0: 4, 1: 1}
    frame = DeltaTable(settings.table_uri("fraud", Kind.PREDICTIONS)).to_pandas()
    assert sorted(frame["event_id"]) == sorted(f"e{T + i}" for i in (1, 2, 3, 4))
    engine.dispose()


class ClosingWriter(ArchiveWriter):
    closed: list[float]

    def close(self, timeout: float = 10.0) -> bool:
        self.closed.append(timeout)
        return super().close(timeout)


def test_a_stopping_loop_flushes_then_gives_the_compaction_under_way_what_its_budget_left(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    clock = FakeClock(T + 100.0)
    settings = ArchiveSettings(uri=str(tmp_path / "archive"))
    writer = ClosingWriter(settings, GROUP)
    writer.closed = []
    loop, store = start(make_session_factory(engine), clock, settings, writer)
    stop = threading.Event()
    stop.set()
    loop.run(stop)
    assert {p: o.next_offset for p, o in store.load(TOPIC, PARTS).items()} == {0: 4, 1: 1}
    assert writer.closed == [loop.settings.shutdown_budget]  # the fake clock stood still
    writer.compactions.request(settings.table_uri("fraud", Kind.PREDICTIONS), None)
    assert writer.compactions.idle(settings.table_uri("fraud", Kind.PREDICTIONS))
    engine.dispose()
