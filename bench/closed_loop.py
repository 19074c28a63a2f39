"""The closed loop on the real-model scenario: drift, a retraining run, a verdict.

Runs ``driftwatch run`` against a broker (the harness's own unless
``KAFKA_BOOTSTRAP_SERVERS`` is set) and a SQLite database, streams the concept
scenario (3 windows before the drift point, 5 after, 2,400 events each, every
event labelled), and waits for the retrain policy's run to reach its verdict.
The champion's accuracy before and after the drift point comes from the
service's performance reports; the candidate's from its validation on the
holdout (the newest 20% of the run's post-drift rows).

Last line: ``closed_loop: champion <pre>% before drift, <post>% after; candidate <c>%
(<c/pre> of pre-drift)``. Target: c/pre >= 0.98.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import broker, create_topic

from tests.harness.closed_loop import run_closed_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    # The scenario is already as small as the figure allows (the candidate learns from four
    # post-drift windows); --quick is accepted for the smoke test and changes nothing.
    parser.add_argument("--quick", action="store_true", help="the same run (smoke test)")
    args = parser.parse_args()
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = args.database_url or f"sqlite:///{workdir / 'closed-loop.db'}"
        topic = f"bench-loop-{int(time.time())}"
        for name in (topic, f"{topic}-labels", f"{topic}-dlq"):
            create_topic(kafka, name, 3)
        started = time.perf_counter()
        result = run_closed_loop(kafka, workdir, url, topic, seed=args.seed)
        elapsed = time.perf_counter() - started
    if not result.runs or result.candidate is None:
        raise SystemExit(
            f"closed_loop: no validated run ({result.runs}); service log:\n{result.log[-3000:]}"
        )
    run = result.runs[0]
    print(
        f"run {run.id}: {run.phase}, {run.data_rows} archived rows, trigger {run.trigger}; "
        f"{len(result.fired)} run(s) fired, {len(result.decisions) - len(result.fired)} "
        f"cause(s) suppressed; {elapsed:.0f} s"
    )
    c, pre, post = result.candidate, result.pre, result.post
    print(
        f"closed_loop: champion {pre:.1%} before drift, {post:.1%} after; "
        f"candidate {c:.1%} ({c / pre:.3f} of pre-drift)"
    )


if __name__ == "__main__":
    main()
