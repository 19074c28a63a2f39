"""The closed loop on both real-model scenarios: drift, a retraining run, a verdict, a
canary rollout, a promotion.

Runs ``driftwatch run`` against a broker (the harness's own unless
``KAFKA_BOOTSTRAP_SERVERS`` is set) and a SQLite database per scenario. The events
come from the demo's model server (``service/dev/model_server.py``), which reads the
``file`` router's JSON: the scenario's history (3 windows of 10 s before the drift
point, 5 after, 2,400 events each, every event labelled) as a burst, then a live
stream of 100 events per second. The retrain policy's run reaches its verdict, the
accepted candidate is rolled out at 25, 50 and 100% of the live stream and
promoted, and the stream goes on for 4 windows served by the promoted version
(tests/harness/closed_loop.py). The service's config is the same for both
scenarios: ``concept`` (a linear champion; the inputs shift and the concept changes)
and ``interaction`` (a gradient-boosting champion; the inputs stay, the new concept
is an interaction of two features).

Accuracies: the champion's and the candidate's are on fresh rows of the scenario,
which no stream, training or holdout holds: the champion's before and after the
drift point, and the accepted candidate's (loaded from the registry by its sha256)
on post-drift rows drawn after the run. The accuracy after promotion is the
production model's on the live stream: the labelled pairs the service stored per
window (``performance_aggregates``) of the promoted version, for the 4 windows that
started after the promotion. Times are wall-clock seconds from the moment the first post-drift
event was sent (after the pre-drift ones were acknowledged) to the run's creation,
to its verdict and to the promotion.

Per scenario, a line about the run and one about the rollout, then
``closed_loop[<scenario>]: champion <pre>% before drift, <post>% after; candidate
<c>% (<c/pre> of pre-drift); onset→run <s> s, onset→verdict <s> s; promoted <s> s
after onset; accuracy after promotion <a>% (<a/pre> of pre-drift)``. Target: an
accepted candidate, promoted, with c/pre and a/pre >= 0.98 and the promotion less
than 180 s after onset (``--promoted-within``) on both; the exit status is 1
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
TARGET = 0.98  # of the pre-drift accuracy, for the candidate and after promotion
PROMOTED_WITHIN = 180.0  # seconds after onset, on the machine the README quotes


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
    parser.add_argument(
        "--promoted-within",
        type=float,
        default=PROMOTED_WITHIN,
        help=f"seconds after onset the promotion must come within (default {PROMOTED_WITHIN:g}; "
        "0: no time target)",
    )
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
            failure = report(result, time.perf_counter() - started, args.promoted_within)
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


def report(result: ClosedLoop, elapsed: float, within: float) -> str | None:
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
    promoted = result.since_change(result.promoted_at())
    rollout = result.rollout
    if rollout is not None:
        steps = " → ".join(
            f"{p.phase}" + (f" {p.step + 1}" if p.phase == "progressing" else "")
            for p in result.phases
        )
        served = ", ".join(f"{v}: {n}" for v, n in sorted(result.served.items()))
        print(
            f"{name} rollout {rollout.id}: {steps}; {len(result.analyses)} checks stored; "
            f"events served {served}; {_judged(result)}",
            flush=True,
        )
    a = result.after
    after = "-" if a is None else f"{a:.1%} ({a / pre:.3f} of pre-drift)"
    print(
        f"{name}: champion {pre:.1%} before drift, {post:.1%} after; "
        f"candidate {c:.1%} ({c / pre:.3f} of pre-drift); "
        f"onset→run {_seconds(to_run)} s, onset→verdict {_seconds(to_verdict)} s; "
        f"promoted {_seconds(promoted)} s after onset; accuracy after promotion {after}",
        flush=True,
    )
    return _missed(result, c, a, promoted, within)


def _missed(
    result: ClosedLoop, c: float, a: float | None, promoted: float | None, within: float
) -> str | None:
    """What of the target was missed, if anything."""
    run, pre = result.runs[0], result.pre
    if run.verdict != "accepted":
        return f"run {run.id} was not accepted: {run.phase}, {run.failure_reason}"
    if c / pre < TARGET:
        return f"candidate at {c / pre:.3f} of pre-drift, below {TARGET}"
    rollout = result.rollout
    if rollout is None or promoted is None:
        why = "no rollout" if rollout is None else f"{rollout.phase}: {rollout.reason}"
        return f"run {run.id}'s candidate was not promoted ({why})"
    if a is None or a / pre < TARGET:
        return f"accuracy after promotion {a} is below {TARGET} of pre-drift {pre:.3f}"
    if within > 0 and promoted >= within:
        return f"promoted {promoted:.0f} s after onset, not within {within:.0f} s"
    return None


def _judged(result: ClosedLoop) -> str:
    """Each step's last analysis: every check's outcome and measured value."""
    last: dict[int, dict[str, str]] = {}
    for a in result.analyses:
        value = "-" if a.value is None else f"{a.value:.3g}"
        last.setdefault(a.step, {})[a.check] = f"{a.check} {a.outcome} {value}"
    return "; ".join(
        f"step {step + 1}: {', '.join(checks.values())}" for step, checks in sorted(last.items())
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
