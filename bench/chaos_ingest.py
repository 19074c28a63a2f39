"""Crash safety at scale: SIGKILL ``driftwatch run`` five times mid-stream.

Produces 200,000 events to a 3-partition topic, runs the service as a child
process against a SQLite database, kills it with SIGKILL at five random moments
while it makes progress, restarts it each time, and finally compares SQL with
what the producer had acknowledged, window by window.

Last line: ``chaos_ingest: lost=0 duplicated=0 kills=5``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import broker, fill_topic

from db.migrate import upgrade
from db.session import make_engine
from service.config import load_config
from tests.harness.chaos import run_chaos
from tests.harness.scenario import write_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    args = parser.parse_args()
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = args.database_url or f"sqlite:///{workdir / 'chaos.db'}"
        upgrade(make_engine(url))
        topic = f"bench-chaos-{int(time.time())}"
        kafka.create_topic(f"{topic}-dlq", 1)
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
        )
        spec = load_config(config, env={}).model_specs()["wide"]
        report = fill_topic(kafka, topic, spec, args.events)
        print(f"seed {args.seed}; killing {args.kills} times", flush=True)
        result = run_chaos(config, url, report.windows, workdir, kills=args.kills, seed=args.seed)
        print(f"SQL totals right after each kill: {list(result.stored_at_kills)}")
        print(f"stored {result.stored} of {result.sent} events in {result.seconds:.1f}s")
        print(
            f"chaos_ingest: lost={result.lost} duplicated={result.duplicated} kills={result.kills}"
        )


if __name__ == "__main__":
    main()
