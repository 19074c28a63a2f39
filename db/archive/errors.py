"""Errors raised by the labeled-event archive.

    StoreError (db.errors)
    └── ArchiveError            the archive refused the work: a bug or a setup problem
        ├── ArchiveUnavailable  the storage behind archive.uri cannot be reached (retriable)
        ├── ArchiveConflict     another writer committed to the table first (retriable:
        │                       the append is redone against the new table version)
        └── ArchiveNotFound     no archive table where one was expected (export)

deltalake's, pyarrow's and fsspec's exceptions are translated where they are
raised (:func:`translate`), so the ingestion loop retries the archive exactly as
it retries SQL: both are the store. Only storage failures are retriable; an
exception of no storage library (a bug) becomes a plain, fatal ArchiveError.
"""

from __future__ import annotations

from deltalake.exceptions import (
    CommitFailedError,
    DeltaError,
    DeltaProtocolError,
    SchemaMismatchError,
    TableNotFoundError,
)

from db.errors import StoreError


class ArchiveError(StoreError):
    pass


class ArchiveUnavailable(ArchiveError):
    retriable = True


class ArchiveConflict(ArchiveError):
    retriable = True


class ArchiveNotFound(ArchiveError):
    pass


def translate(exc: Exception, what: str) -> ArchiveError:
    """The archive error for ``exc``, raised while doing ``what`` (e.g. "appending to ...")."""
    text = f"{what}: {exc}"
    if isinstance(exc, CommitFailedError):
        return ArchiveConflict(text)
    if isinstance(exc, TableNotFoundError):
        return ArchiveNotFound(text)
    if isinstance(exc, DeltaProtocolError):
        return ArchiveError(text)
    if isinstance(exc, OSError):
        return ArchiveUnavailable(text)
    # deltalake reports object-store failures (network, permissions) as a generic
    # DeltaError or OSError, and a schema mismatch as a SchemaMismatchError, which
    # retrying cannot fix.
    if isinstance(exc, DeltaError) and not isinstance(exc, SchemaMismatchError):
        return ArchiveUnavailable(text)
    # Anything else (pyarrow refusing the data, a KeyError in our own code) is a bug or
    # bad input: not retriable, so it surfaces instead of being retried forever.
    return ArchiveError(text)
