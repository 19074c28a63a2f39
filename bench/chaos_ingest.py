"""Crash safety at scale: SIGKILL ``driftwatch run`` five times mid-stream.

Produces 200,000 events to a 3-partition topic and labels for about 90% of
them to a 3-partition labels topic (delayed 0-10 minutes of event time,
shuffled, 2% sent twice), runs the service as a child process against a
SQLite database, kills it with SIGKILL at five random moments while it makes
progress, restarts it each time, and finally compares SQL with what the
producer had acknowledged: events window by window, and the joined labelled
outcomes confusion cell by confusion cell.

The archive (Delta tables under the temp dir) is compared too, message by message.

Last line: ``chaos_ingest: lost=0 duplicated=0 kills=5 labels_lost=0 labels_duplicated=0
archive_lost=0 archive_duplicated=0`` (one line).
``--quick`` runs 3,000 events and one kill, for the smoke test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import broker, create_topic

from consumers.synthetic import SyntheticPlan, SyntheticStream
from db.migrate import upgrade
from db.session import make_engine
from service.config import load_config
from tests.harness.chaos import run_chaos
from tests.harness.labels import produce_labeled
from tests.harness.scenario import wide_model, write_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    parser.add_argument("--quick", action="store_true", help="3,000 events, one kill (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.kills = 3000, 1
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = args.database_url or f"sqlite:///{workdir / 'chaos.db'}"
        upgrade(make_engine(url))
        topic = f"bench-chaos-{int(time.time())}"
        # Dead letters get three partitions too: an external 0.9 broker gives each its default.
        for name in (topic, f"{topic}-labels", f"{topic}-dlq"):
            create_topic(kafka, name, 3)
        config = write_config(
            workdir / "config.yaml",
            bootstrap_servers=kafka.bootstrap_servers,
            api_version=kafka.api_version,
            database_url=url,
            topic=topic,
            group_id=topic,
            flush_events=2000,
            flush_interval="250ms",
            extra_consumer={"max_poll_records": 500},
            models={"wide": wide_model(labels={"task": "classification", "join_ttl": "1d"})},
        )
        cfg = load_config(config, env={})
        plan = SyntheticPlan(
            model=cfg.model_specs()["wide"],
            rate=1000.0,
            start=time.time() - args.events / 1000.0 - 60,
            seed=args.seed % 10_000,
        )
        producer = kafka.producer(batch_size=256 * 1024, linger_ms=20)
        started = time.perf_counter()
        try:
            sent = produce_labeled(
                producer,
                [SyntheticStream(plan)],
                args.events,
                cfg.kafka.topics.predictions,
                cfg.kafka.topics.labels,
                seed=args.seed,
            )
        finally:
            producer.close()
        print(
            f"produced {args.events} events and {sent.labels_sent} labels "
            f"({sent.labeled} distinct) in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        print(f"seed {args.seed}; killing {args.kills} times", flush=True)
        result = run_chaos(
            config,
            url,
            sent.windows,
            workdir,
            kills=args.kills,
            seed=args.seed,
            cells=sent.cells,
            archive_uri=str(workdir / "archive"),
            labels_sent=sent.labels_sent,
        )
        print(f"SQL totals right after each kill: {list(result.stored_at_kills)}")
        print(f"stored {result.stored} of {result.sent} events in {result.seconds:.1f}s")
        print(f"joined {result.labeled_stored} of {result.labeled_sent} labelled outcomes")
        print(f"archived {result.archived} of {args.events + sent.labels_sent} messages")
        print(
            f"chaos_ingest: lost={result.lost} duplicated={result.duplicated} kills={result.kills} "
            f"labels_lost={result.labels_lost} labels_duplicated={result.labels_duplicated} "
            f"archive_lost={result.archive_lost} archive_duplicated={result.archive_duplicated}"
        )


if __name__ == "__main__":
    main()
