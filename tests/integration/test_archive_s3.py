"""The archive on S3 (moto's server): appends, replays, export, and two writers racing.

A Delta commit of version N creates ``_delta_log/N.json``; on S3 only a conditional
put (``If-None-Match: *``) makes that creation exclusive. These tests check that
the local server refuses a second create (so the race below is real), and that
two writers committing the same version leave exactly one commit and each event
once.
"""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError
from pyarrow import fs as pafs

from db.archive import ArchiveSettings, ArchiveWriter, Kind, export_labeled
from service.config.archive import ArchiveConfig
from tests.harness.s3 import LocalS3, server_python
from tests.unit.db.test_archive import _Stale, labels
from tests.unit.db.test_archive_export import DAY0, SPEC, write_labels, write_predictions


@pytest.fixture
def settings(s3_bucket: str) -> ArchiveSettings:
    return ArchiveConfig(uri=f"s3://{s3_bucket}/archive").settings()


def archived(settings: ArchiveSettings) -> list[tuple[int, int]]:
    table = DeltaTable(settings.table_uri("m", Kind.LABELS), storage_options=_opts(settings))
    frame = table.to_pandas()
    return sorted(zip(frame["partition"].tolist(), frame["offset"].tolist(), strict=True))


def _opts(settings: ArchiveSettings) -> dict[str, str]:
    return dict(settings.storage_options)


_PUT_TWICE = """
import sys, boto3, botocore.exceptions as e
c = boto3.client("s3")
c.put_object(Bucket=sys.argv[1], Key="probe", Body=b"1", IfNoneMatch="*")
try:
    c.put_object(Bucket=sys.argv[1], Key="probe", Body=b"2", IfNoneMatch="*")
    print("overwritten")
except e.ClientError as x:
    print(x.response["Error"]["Code"])
print(c.get_object(Bucket=sys.argv[1], Key="probe")["Body"].read().decode())
"""


def test_the_local_server_refuses_a_second_create_of_a_key(s3_server: LocalS3, s3_bucket: str):
    """A signed PutObject with If-None-Match: * (boto3, in the server's virtualenv)."""
    python = server_python()
    assert python is not None
    done = subprocess.run(
        [str(python), "-c", _PUT_TWICE, s3_bucket],
        env={**os.environ, **s3_server.env()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["PreconditionFailed", "1"]


def test_s3_tables_get_conditional_put_whatever_the_config_leaves_out(s3_bucket: str):
    settings = ArchiveConfig(uri=f"s3://{s3_bucket}/archive").settings()
    assert settings.storage_options == {"conditional_put": "etag"}
    local = ArchiveConfig(uri="./archive").settings()
    assert local.storage_options == {}


def test_appends_replays_and_the_export_work_on_s3(settings: ArchiveSettings, tmp_path: Path):
    writer = ArchiveWriter(settings, "g")
    write_predictions(writer, ["a", "b", "c", "d"], [0, 1, 2, 3], first=0)
    write_labels(writer, ["b", "a", "c"], [1, 0, 1], first=0)
    # The flush replayed from a fresh process after a crash before the SQL commit.
    replay = ArchiveWriter(settings, "g")
    write_predictions(replay, ["a", "b", "c", "d"], [0, 1, 2, 3], first=0)
    predictions = DeltaTable(
        settings.table_uri("fraud", Kind.PREDICTIONS), storage_options=_opts(settings)
    )
    assert predictions.version() == 0
    assert predictions.transaction_version("driftwatch:g:p:0") == 4
    assert predictions.file_uris()[0].startswith(f"{settings.uri}/fraud/predictions/date=")
    dest = tmp_path / "run" / "data.parquet"
    done = export_labeled(settings, SPEC, DAY0, DAY0 + timedelta(days=10), str(dest))
    assert done.rows == 3
    assert sorted(pq.read_table(dest).column("event_id").to_pylist()) == ["a", "b", "c"]
    on_s3 = f"{settings.uri}/exports/fraud.parquet"
    assert export_labeled(settings, SPEC, DAY0, None, on_s3).rows == 3
    assert pq.read_table(on_s3).equals(pq.read_table(dest))


def test_two_replicas_racing_on_a_partition_on_s3_archive_each_event_once(
    settings: ArchiveSettings,
):
    first = ArchiveWriter(settings, "g")
    first.append("m", Kind.LABELS, labels([0, 1]), {("l", 0): 2})
    uri = settings.table_uri("m", Kind.LABELS)
    before = DeltaTable(uri, storage_options=_opts(settings))
    # The new owner commits version 1 with offsets 2..5; the zombie, on its snapshot of
    # version 0, commits version 1 too: the put of _delta_log/…01.json is refused, the
    # conflict check finds the winner's transaction for the same app id, and the
    # zombie's retry on the new version has nothing left to add.
    ArchiveWriter(settings, "g").append("m", Kind.LABELS, labels([2, 3, 4, 5]), {("l", 0): 6})
    zombie = _Stale(settings, before)
    assert zombie.append("m", Kind.LABELS, labels([2, 3]), {("l", 0): 4}) == 0
    assert zombie.loads == 2
    assert archived(settings) == [(0, o) for o in range(6)]
    table = DeltaTable(uri, storage_options=_opts(settings))
    assert table.version() == 1
    assert table.transaction_version("driftwatch:g:l:0") == 6


def test_of_two_commits_of_one_version_exactly_one_wins(settings: ArchiveSettings):
    """deltalake alone, two handles on version 0: the one that commits second is
    refused when it claims the same application transaction, and rebased onto the
    winner's version when it does not (a plain append conflicts with nothing)."""
    uri = settings.table_uri("m", Kind.LABELS)
    opts = _opts(settings)
    write_deltalake(uri, labels([0]), mode="append", storage_options=opts)
    a = DeltaTable(uri, storage_options=opts)
    b = DeltaTable(uri, storage_options=opts)
    c = DeltaTable(uri, storage_options=opts)
    claim = CommitProperties(app_transactions=[Transaction("driftwatch:g:l:0", 2)])
    write_deltalake(a, labels([1]), mode="append", commit_properties=claim)
    with pytest.raises(CommitFailedError):
        write_deltalake(b, labels([1]), mode="append", commit_properties=claim)
    write_deltalake(c, labels([7], partition=3), mode="append")
    table = DeltaTable(uri, storage_options=opts)
    assert table.version() == 2
    rows = table.to_pyarrow_table()
    got = sorted(zip(rows["partition"].to_pylist(), rows["offset"].to_pylist(), strict=True))
    assert got == [(0, 0), (0, 1), (3, 7)]
    history = [h["operation"] for h in table.history()]
    assert len(history) == 3, history


def test_a_commit_that_lost_the_version_is_rebased_and_the_winners_log_stays(
    settings: ArchiveSettings,
):
    """A store that ignored If-None-Match would let the second writer overwrite
    version 1; here the log of version 1 is the first writer's, byte for byte."""
    uri = settings.table_uri("m", Kind.LABELS)
    opts = _opts(settings)
    write_deltalake(uri, labels([0]), mode="append", storage_options=opts)
    a = DeltaTable(uri, storage_options=opts)
    b = DeltaTable(uri, storage_options=opts)
    write_deltalake(a, labels([1]), mode="append")
    store, root = pafs.FileSystem.from_uri(uri)
    entry = f"{root}/_delta_log/{1:020d}.json"
    first = store.open_input_stream(entry).readall()
    write_deltalake(b, labels([2]), mode="append")
    assert store.open_input_stream(entry).readall() == first
    assert DeltaTable(uri, storage_options=opts).version() == 2
    offsets = DeltaTable(uri, storage_options=opts).to_pyarrow_table()["offset"].to_numpy()
    assert np.array_equal(np.sort(offsets), [0, 1, 2])
