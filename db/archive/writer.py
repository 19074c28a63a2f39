"""Appends to the archive's Delta tables: each event once, whatever is replayed.

Every append records, in the same Delta commit, an application transaction per
source partition it holds: app id ``driftwatch:{group}:{topic}:{partition}``,
version = that partition's next offset after the flush. An event at offset o
of that partition is therefore in a table iff o < the table's version for the
partition, and an append first drops the events below it. Each table's
versions advance only with its own events, so several models sharing a
partition, or a flush with nothing for a model, need nothing special.

The ingestion loop appends before its SQL transaction commits. A crash between
the two replays the flush from the offsets in SQL, and the replayed events are
dropped here; a replica that lost its partitions (a zombie) may append before
its SQL commit fails, and the new owner then skips what the zombie archived.
Two writers racing on one partition both read the table's versions from the
same snapshot: Delta's conflict check refuses the second commit, because the
winner's commit carries a transaction for an app id the loser read, and the
loser's retry drops what the winner wrote.

Every flush adds a file per model, kind and date, and an append costs time in
proportion to the files the table holds (measured with deltalake 1.6: 16 ms at
100 small files, 58 ms at 400, 186 ms at 600 with twenty features). So a
writer compacts a table itself after every ``compact_every`` appends to it,
rather than leave it to the hourly maintenance: a flush every 100 ms would
otherwise slow ingestion down within minutes. Every 50 appends cost least of
10, 25, 50 and 100 in both regimes measured (appends and compactions together,
20 features: 16.5 ms an append of 25 rows against 21.6 at 100; 21.8 ms of 500
rows against 23.9). The log's entries cost an append time too, so a table is
created with a short log retention (``ArchiveSettings.table_properties``).
Compaction rewrites files without changing data or the application
transactions, on a thread of its own beside the appends
(:mod:`db.archive.compactor`); if it fails, the next one or the maintenance job
does it.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    PostCommitHookProperties,
    Transaction,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import TableNotFoundError

from db.archive.compactor import Compactor
from db.archive.errors import ArchiveConflict, translate
from db.archive.settings import ArchiveSettings, Kind

# deltalake looks for expired log entries after every commit, listing the whole log: a
# LIST request per append on object storage, for entries that only a checkpoint (every
# 100 commits) makes deletable. Appends skip it; the writer's compactions (every
# compact_every appends) and the maintenance job delete them.
_APPEND_HOOKS = PostCommitHookProperties(cleanup_expired_logs=False)
# Conflicts are races between replicas over a rebalance; each retry sees the winner.
_ATTEMPTS = 5


def _unobserved() -> None:
    pass


class ArchiveWriter:
    """Appends flushes of buffered events to ``{uri}/{model}/{kind}``.

    ``compaction_failed`` is called for each compaction that failed (the service
    counts them): the table keeps its small files, and appends slow down, until a
    later compaction succeeds. :meth:`close` when done appending.
    """

    def __init__(
        self,
        settings: ArchiveSettings,
        group: str,
        compaction_failed: Callable[[], None] = _unobserved,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.group = group
        self.compactions = Compactor(settings, compaction_failed)
        self._locks: dict[str, threading.Lock] = {}
        self._tables: dict[str, DeltaTable] = {}
        self._appends: dict[str, int] = {}
        # Per table: the version its app transactions were read at, and what was read.
        # Reading one costs about a millisecond once a table has a checkpoint (deltalake
        # 1.6), three partitions a flush, every table: most of what an append spends
        # outside Delta's own commit. Valid while the table holds no commit but ours.
        self._txns: dict[str, tuple[int, dict[str, int | None]]] = {}
        # Per table: when its snapshot was last the table's latest version (loaded,
        # refreshed, or left so by this writer's own commit); see _load.
        self._synced: dict[str, float] = {}

    def app_id(self, topic: str, partition: int) -> str:
        return f"driftwatch:{self.group}:{topic}:{partition}"

    def versions(self, model: str, kind: Kind, topic: str, partitions: list[int]) -> dict[int, int]:
        """The stored next offset of each partition that the table has events of."""
        uri = self.settings.table_uri(model, kind)
        with self._lock(uri):
            table = self._load(uri)
            if table is None:
                return {}
            found = {p: self._txn_version(uri, table, self.app_id(topic, p)) for p in partitions}
        return {p: v for p, v in found.items() if v is not None}

    def append(
        self,
        model: str,
        kind: Kind,
        rows: pa.Table,
        next_offsets: Mapping[tuple[str, int], int],
    ) -> int:
        """Append the rows not yet archived; returns how many were written.

        ``rows`` carry topic/partition/offset columns; ``next_offsets`` holds the
        version to record for each (topic, partition) among them.
        """
        uri = self.settings.table_uri(model, kind)
        with self._lock(uri):
            for attempt in range(_ATTEMPTS):
                try:
                    written = self._append_once(uri, rows, next_offsets)
                    break
                except ArchiveConflict:
                    self._tables.pop(uri, None)
                    self._txns.pop(uri, None)
                    if attempt == _ATTEMPTS - 1:
                        raise
            if written:
                appends = self._appends.get(uri, 0) + 1
                # While one is queued or under way the count goes on: the next append asks.
                if appends >= self.settings.compact_every and self.compactions.idle(uri):
                    self.compactions.request(uri, functools.partial(self._checkout, uri))
                    appends = 0
                self._appends[uri] = appends
        return written

    def compact(self, uri: str) -> int:
        """Compact the table's small files now, on this thread; returns how many it
        replaced (0 when it failed: maintenance, never a flush's failure, but logged and
        counted, since appends slow down until one works)."""
        removed, table = self.compactions.compact(uri, functools.partial(self._checkout, uri))
        if table is not None:
            with self._lock(uri):
                self._tables.setdefault(uri, table)
        return removed

    def close(self, timeout: float = 10.0) -> bool:
        """Stop compacting: wait up to ``timeout`` seconds for the compaction under way,
        drop those queued. False if one was still running then."""
        return self.compactions.close(timeout)

    def _checkout(self, uri: str) -> DeltaTable | None:
        """Our snapshot of ``uri`` (loaded if we hold none), for a compaction starting now:
        the next append takes it back from the compactor once the compaction ended, or
        loads one meanwhile. None when the table does not exist."""
        with self._lock(uri):
            table = self._load(uri, reuse=True)
            self._tables.pop(uri, None)
            self._txns.pop(uri, None)
            return table

    def _lock(self, uri: str) -> threading.Lock:
        """What keeps a table's snapshot to one thread at a time: an append, or the
        compaction taking it (in CPython setdefault is atomic)."""
        return self._locks.setdefault(uri, threading.Lock())

    def _append_once(
        self, uri: str, rows: pa.Table, next_offsets: Mapping[tuple[str, int], int]
    ) -> int:
        table = self._load(uri, reuse=True)
        rows = _once_per_source(rows)
        keep = rows if table is None else self._unarchived(uri, table, rows)
        if keep.num_rows == 0:
            return 0
        sources = _sources(keep)
        txns = [Transaction(self.app_id(t, p), next_offsets[(t, p)]) for t, p in sources]
        read_at = -1 if table is None else table.version()
        try:
            write_deltalake(
                uri if table is None else table,
                keep,
                mode="append",
                partition_by=["date"],
                schema_mode="merge",
                configuration=self.settings.table_properties() if table is None else None,
                storage_options=dict(self.settings.storage_options) or None,
                commit_properties=CommitProperties(app_transactions=txns),
                post_commithook_properties=_APPEND_HOOKS,
                writer_properties=_writer_properties(keep.schema),
            )
        except Exception as exc:
            raise translate(exc, f"appending to {uri}") from exc
        if table is None:
            self._tables.pop(uri, None)
        else:
            # deltalake moved the snapshot to our commit, which followed every earlier one.
            self._synced[uri] = self._clock()
        self._committed(uri, table, read_at, txns)
        return int(keep.num_rows)

    def _txn_version(self, uri: str, table: DeltaTable, app_id: str) -> int | None:
        """``table``'s version of ``app_id``, read once per table version."""
        at, known = self._txns.get(uri, (-1, {}))
        if at != table.version():
            at, known = table.version(), {}
            self._txns[uri] = (at, known)
        if app_id not in known:
            known[app_id] = table.transaction_version(app_id)
        return known[app_id]

    def _committed(
        self, uri: str, table: DeltaTable | None, read_at: int, txns: list[Transaction]
    ) -> None:
        """Carry the known app transactions over our own commit, if it came right after
        the version they were read at; else forget them (another writer committed)."""
        at, known = self._txns.pop(uri, (-1, {}))
        if table is None or at != read_at or table.version() != read_at + 1:
            return
        known.update({t.app_id: t.version for t in txns})
        self._txns[uri] = (table.version(), known)

    def _unarchived(self, uri: str, table: DeltaTable, rows: pa.Table) -> pa.Table:
        """``rows`` less those below their partition's stored version."""
        offsets = rows.column("offset").to_numpy()
        mask: np.ndarray | None = None
        for topic, partition in _sources(rows):
            version = self._txn_version(uri, table, self.app_id(topic, partition))
            if version is None:
                continue
            here = pc.and_(
                pc.equal(rows.column("topic"), topic),
                pc.equal(rows.column("partition"), partition),
            ).to_numpy(zero_copy_only=False)
            archived = here & (offsets < version)
            if archived.any():
                mask = ~archived if mask is None else mask & ~archived
        return rows if mask is None else rows.filter(pa.array(mask))

    def _load(self, uri: str, reuse: bool = False) -> DeltaTable | None:
        """The table at its latest version, or None when it does not exist yet.

        ``reuse`` (appends): the snapshot held, without refreshing it, while it was the
        latest version less than half the log retention ago. Refreshing costs a LIST
        and a GET on object storage, two of the ten requests of an append
        (bench/archive_requests.py). A stale snapshot is safe to commit from: Delta
        checks each commit made since it, refuses ours if one carries an app id of ours
        (ArchiveConflict: the retry reloads and drops what that writer archived), and
        rebases it over the others. Those commits are younger than the snapshot, so
        within half the retention no checkpoint has deleted their log entries yet.
        """
        table = self._tables.get(uri)
        now = self._clock()
        if table is not None and reuse and now - self._synced.get(uri, -math.inf) < self._reuse_for:
            return table
        if table is None and (table := self.compactions.take(uri)) is not None:
            # Back from its compaction, which ran beside our appends: not known to be
            # the latest version, so refreshed (reading only the log's new entries).
            self._tables[uri] = table
        try:
            if table is None:
                table = DeltaTable(uri, storage_options=dict(self.settings.storage_options) or None)
                self._tables[uri] = table
            else:
                table.update_incremental()
        except TableNotFoundError:
            return None
        except Exception as exc:
            raise translate(exc, f"reading {uri}") from exc
        self._synced[uri] = now
        return table

    @property
    def _reuse_for(self) -> float:
        return self.settings.log_retention_seconds / 2


def _once_per_source(rows: pa.Table) -> pa.Table:
    """``rows`` with each (topic, partition, offset) once, the first kept.

    The loop hands each record over once; this holds the archive's rule even if
    a record were delivered twice within one flush.
    """
    offsets = rows.column("offset").to_numpy()
    partitions = rows.column("partition").to_numpy()
    if len(offsets) < 2:
        return rows
    order = np.lexsort((offsets, partitions))
    same = (np.diff(offsets[order]) == 0) & (np.diff(partitions[order]) == 0)
    if not same.any():
        return rows
    codes = pc.dictionary_encode(rows.column("topic")).combine_chunks().indices.to_numpy()
    order = np.lexsort((np.arange(len(offsets)), offsets, partitions, codes))
    key = np.stack([codes[order], partitions[order], offsets[order]])
    first = np.ones(len(order), bool)
    first[1:] = (np.diff(key, axis=1) != 0).any(axis=0)
    return rows.take(pa.array(np.sort(order[first])))


def _writer_properties(schema: pa.Schema) -> WriterProperties:
    """Dictionary pages only for text columns other than event ids.

    Numbers and event ids are mostly distinct, so a dictionary is built and then
    thrown away for each of their column chunks: on 50,000 20-feature events it
    made the append about twice as slow. Compaction rewrites the files anyway.
    """
    text = [f.name for f in schema if pa.types.is_string(f.type) and f.name != "event_id"]
    return WriterProperties(
        compression="SNAPPY",
        default_column_properties=ColumnProperties(dictionary_enabled=False),
        column_properties={name: ColumnProperties(dictionary_enabled=True) for name in text},
    )


def _sources(rows: pa.Table) -> list[tuple[str, int]]:
    pairs = (
        pa.Table.from_arrays(
            [rows.column("topic"), rows.column("partition")], names=["topic", "partition"]
        )
        .group_by(["topic", "partition"])
        .aggregate([])
    )
    return sorted(
        zip(pairs.column("topic").to_pylist(), pairs.column("partition").to_pylist(), strict=True)
    )
