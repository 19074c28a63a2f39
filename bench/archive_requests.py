"""What an archive append asks of an object store: requests per append, by kind.

Every flush appends once to each archived model's table and kind (a Delta commit
each), and an object store that bills per request bills each of them. The
benchmark appends ``--appends`` flushes of ``--rows`` labels with driftwatch's
own writer to three tables on the tests' local S3 server (moto, from ``make
s3-server``), one without the writer's compactions and two with one every
``archive.compact_every`` appends (50, the default), and counts the requests the
server logged for each table after the first append (which creates it). The
compactions run on the writer's compaction thread, beside the appends: for one
table each ends before the next append starts, as when flushes are seconds apart;
for the other the appends follow each other at once, so they run into the
compaction under way (the next append loads the table itself).

Last line: ``archive_requests: <n> appends of <rows> rows; per append: <x>
requests (LIST <x>, PUT <x>, GET <x>, other <x>); with compaction every <k>: <x>
requests (...) when each ends before the next flush, <x> (...) when flushes come
back to back``. A deployment's requests per second are about that figure times
the tables a flush appends to, divided by the seconds between flushes
(docs/concepts/archive.md).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _common import REPO  # noqa: F401  (puts the repository on sys.path)
from archive_log import TOPIC, flush_rows

from db.archive import ArchiveWriter, Kind
from service.config.archive import ArchiveConfig
from tests.harness.s3 import local_s3, server_python

BUCKET = "driftwatch-bench"
NO_COMPACTION = 10**9
# moto's access log: `"GET /bucket?list-type=2&prefix=archive/m/... HTTP/1.1" 200 -`.
_REQUEST = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) /([^ ?]*)(\?[^ ]*)? HTTP')
_PREFIX = re.compile(r"prefix=([^&]*)")


def requests_by_kind(log: Path, table: str) -> Counter[str]:
    """The requests logged so far that concern ``table`` (a key prefix), by kind."""
    kinds: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        found = _REQUEST.search(line)
        if found is None:
            continue
        method, path, query = found.group(1), found.group(2), found.group(3) or ""
        if "list-type" in query:
            prefix = _PREFIX.search(query)
            if prefix is not None and prefix.group(1).replace("%2F", "/").startswith(table):
                kinds["LIST"] += 1
        elif path.startswith(f"{BUCKET}/{table}"):
            kinds[method if method in ("PUT", "GET") else "other"] += 1
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=200, help="appends to each table")
    parser.add_argument("--rows", type=int, default=500, help="events per append")
    parser.add_argument("--quick", action="store_true", help="a few appends")
    args = parser.parse_args()
    if args.quick:
        args.appends, args.rows = 12, 20
    python = server_python()
    if python is None:
        sys.exit("no local S3 server: run `make s3-server` first")
    compact_every = ArchiveConfig().compact_every
    prefix = "driftwatch-archive-requests-"
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, local_s3(python, Path(tmp)) as s3:
        os.environ.update(s3.env())
        s3.create_bucket(BUCKET)
        log = Path(tmp) / "moto.log"
        per_append: dict[str, tuple[Counter[str], int]] = {}
        sides = (("plain", NO_COMPACTION), ("spaced", compact_every), ("busy", compact_every))
        for name, every in sides:
            cfg = ArchiveConfig(uri=f"s3://{BUCKET}/{name}", compact_every=every)
            settings = cfg.settings()
            writer = ArchiveWriter(settings, "bench")
            table = settings.table_uri("m", Kind.LABELS).split(f"{BUCKET}/", 1)[1]
            writer.append("m", Kind.LABELS, flush_rows(0, args.rows), {(TOPIC, 0): args.rows})
            before = requests_by_kind(log, table)
            for i in range(1, args.appends + 1):
                first = i * args.rows
                rows = flush_rows(first, args.rows)
                writer.append("m", Kind.LABELS, rows, {(TOPIC, 0): first + args.rows})
                if name == "spaced":
                    writer.compactions.wait()
            writer.compactions.wait()  # theirs count too
            per_append[name] = (requests_by_kind(log, table) - before, args.appends)
    plain, n = per_append["plain"]
    spaced, _ = per_append["spaced"]
    busy, _ = per_append["busy"]
    if plain["PUT"] < 2 * n:
        sys.exit(f"the server logged {plain['PUT']} PUTs for {n} appends: its log is not read")
    print(
        f"archive_requests: {n} appends of {args.rows} rows; per append: "
        f"{plain.total() / n:.2f} requests ({_kinds(plain, n)}); with compaction every "
        f"{compact_every}: {spaced.total() / n:.2f} requests ({_kinds(spaced, n)}) when each "
        f"ends before the next flush, {busy.total() / n:.2f} ({_kinds(busy, n)}) when flushes "
        "come back to back"
    )


def _kinds(requests: Counter[str], appends: int) -> str:
    return ", ".join(f"{k} {requests[k] / appends:.2f}" for k in ("LIST", "PUT", "GET", "other"))


if __name__ == "__main__":
    main()
