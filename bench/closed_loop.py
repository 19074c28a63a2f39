"""The closed loop on both real-model scenarios: drift, a retraining run, a verdict.

Runs ``driftwatch run`` against a broker (the harness's own unless
``KAFKA_BOOTSTRAP_SERVERS`` is set) and a SQLite database per scenario, streams
the scenario (3 windows before the drift point, 5 after, 2,400 events each,
every event labelled), and waits for the retrain policy's run to reach its
verdict. The service's config is the same for both scenarios (tests/harness/closed_loop.py):
``concept`` (a linear champion; the inputs shift and the concept changes) and
``interaction`` (a gradient-boosting champion; the inputs stay, the new concept
is an interaction of two features).

Accuracies are on fresh rows of the scenario, which no stream, training or
holdout holds: the champion's before and after the drift point, and the
accepted candidate's (loaded from the registry by its sha256) on post-drift
rows drawn after the run. Times are wall-clock seconds from the moment the
first post-drift event was sent (after the pre-drift ones were acknowledged)
to the run's creation and to its verdict.

Per scenario, a line about the run, then ``closed_loop[<scenario>]: champion <pre>% before
drift, <post>% after; candidate <c>% (<c/pre> of pre-drift); onset→run <s> s, onset→verdict
<s> s``. Target: c/pre >= 0.98 on both, with an accepted candidate; the exit status is 1
otherwise, with the service's log.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import broker, create_topic

from tests.harness.closed_loop import ClosedLoop, run_closed_loop
from tests.harness.kafka import TestKafka

SCENARIOS = ("concept", "interaction")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="repeatable (default: both)"
    )
    parser.add_argument(
        "--database-url", help="an empty database, with one --scenario (default: SQLite files)"
    )
    # A scenario is already as small as its figure allows (the candidate learns from four
    # post-drift windows): the smoke test runs the one a linear refit cannot heal.
    parser.add_argument("--quick", action="store_true", help="the interaction scenario only")
    args = parser.parse_args()
    chosen = args.scenario or (["interaction"] if args.quick else list(SCENARIOS))
    if args.database_url and len(chosen) != 1:
        parser.error("--database-url takes one --scenario: each scenario needs its own database")
    failures: list[str] = []
    with broker() as kafka, tempfile.TemporaryDirectory() as tmp:
        for scenario in chosen:
            workdir = Path(tmp) / scenario
            workdir.mkdir()
            url = args.database_url or f"sqlite:///{workdir / 'closed-loop.db'}"
            started = time.perf_counter()
            result = run_closed_loop(
                kafka, workdir, url, _topic(kafka, scenario), scenario, seed=args.seed
            )
            failure = report(result, time.perf_counter() - started)
            if failure:
                failures.append(
                    f"closed_loop[{scenario}]: {failure}; service log:\n{result.log[-3000:]}"
                )
    if failures:
        raise SystemExit("\n".join(failures))


def _topic(kafka: TestKafka, scenario: str) -> str:
    topic = f"bench-loop-{scenario}-{int(time.time())}"
    for name in (topic, f"{topic}-labels", f"{topic}-dlq"):
        create_topic(kafka, name, 3)
    return topic


def report(result: ClosedLoop, elapsed: float) -> str | None:
    """Print the scenario's lines; what went wrong, if anything."""
    name = f"closed_loop[{result.scenario}]"
    if not result.runs:
        return "no retraining run"
    run = result.runs[0]
    onset, note = getattr(run, "change_onset", None), getattr(run, "data_note", None)
    print(
        f"{name} run {run.id}: {run.phase}, {run.data_rows} rows, trigger {run.trigger}, "
        f"data {run.data_from:%H:%M:%S}..{run.data_to:%H:%M:%S} (drift point "
        f"{result.drift_point:%H:%M:%S}, onset {'-' if onset is None else f'{onset:%H:%M:%S}'}"
        f"{f'; {note}' if note else ''}); {len(result.fired)} run(s) fired, "
        f"{len(result.decisions) - len(result.fired)} cause(s) suppressed; {elapsed:.0f} s",
        flush=True,
    )
    c, pre, post = result.candidate, result.pre, result.post
    if c is None:
        return f"run {run.id} ({run.phase}) has no candidate to score: {result.candidate_error}"
    to_run = result.since_change(run.created_at)
    to_verdict = result.since_change(run.finished_at)
    print(
        f"{name}: champion {pre:.1%} before drift, {post:.1%} after; "
        f"candidate {c:.1%} ({c / pre:.3f} of pre-drift); "
        f"onset→run {_seconds(to_run)} s, onset→verdict {_seconds(to_verdict)} s",
        flush=True,
    )
    if run.verdict != "accepted":
        return f"run {run.id} was not accepted: {run.phase}, {run.failure_reason}"
    return None


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
