"""How the archive classes foreign errors: storage failures retriable, anything else not."""

from __future__ import annotations

import pytest
from deltalake.exceptions import (
    CommitFailedError,
    DeltaError,
    DeltaProtocolError,
    SchemaMismatchError,
    TableNotFoundError,
)

from db.archive.errors import (
    ArchiveConflict,
    ArchiveError,
    ArchiveNotFound,
    ArchiveUnavailable,
    translate,
)


@pytest.mark.parametrize(
    ("raised", "expected", "retriable"),
    [
        (OSError("connection reset"), ArchiveUnavailable, True),
        (DeltaError("Generic S3 error: timed out"), ArchiveUnavailable, True),
        (CommitFailedError("version 7 exists"), ArchiveConflict, True),
        (TableNotFoundError("no log"), ArchiveNotFound, False),
        (DeltaProtocolError("reader version 3"), ArchiveError, False),
        (SchemaMismatchError("field amount"), ArchiveError, False),
        (ValueError("bad value"), ArchiveError, False),
        # A bug in our own code is not an outage: retrying it forever would hide it.
        (KeyError("amount"), ArchiveError, False),
        (AttributeError("'NoneType' object has no attribute 'schema'"), ArchiveError, False),
    ],
)
def test_translate_classes_each_error(
    raised: Exception, expected: type[ArchiveError], retriable: bool
) -> None:
    translated = translate(raised, "appending to /archive/fraud/labels")
    assert type(translated) is expected
    assert translated.retriable is retriable
    assert str(translated).startswith("appending to /archive/fraud/labels: ")
