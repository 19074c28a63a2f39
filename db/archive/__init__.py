"""The labeled-event archive: every valid prediction and label, once, as Delta tables.

Layout: ``{archive.uri}/{model}/predictions`` and ``{archive.uri}/{model}/labels``,
each partitioned by the events' UTC date (``date=YYYY-MM-DD``). Writing is
:mod:`db.archive.writer`, reading the joined training rows :mod:`db.archive.export`,
retention and compaction :mod:`db.archive.retention`.
"""

from db.archive.errors import ArchiveConflict, ArchiveError, ArchiveNotFound, ArchiveUnavailable
from db.archive.export import ExportSummary, export_labeled, read_table
from db.archive.retention import MaintenanceSummary, maintain
from db.archive.settings import ArchiveSettings, Kind
from db.archive.tables import (
    ARRIVED_LATE,
    LABEL_SCHEMA,
    label_table,
    label_text,
    prediction_schema,
    prediction_table,
)
from db.archive.writer import ArchiveWriter

__all__ = [
    "ARRIVED_LATE",
    "LABEL_SCHEMA",
    "ArchiveConflict",
    "ArchiveError",
    "ArchiveNotFound",
    "ArchiveSettings",
    "ArchiveUnavailable",
    "ArchiveWriter",
    "ExportSummary",
    "Kind",
    "MaintenanceSummary",
    "export_labeled",
    "label_table",
    "label_text",
    "maintain",
    "prediction_schema",
    "prediction_table",
    "read_table",
]
