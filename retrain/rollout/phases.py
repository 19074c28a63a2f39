"""One handler per rollout phase. A handler observes, decides and records; the
:class:`retrain.rollout.driver.RolloutDriver` commits what it recorded, then makes
the router call it asked for.

How a step is judged, once it ran ``min_duration`` and its span holds
``min_events`` canary events (the largest canary sample of the analysis' checks):

- a failed ``sample_ratio`` check pauses: the canary does not get the share the
  router was told, so the split or the version stamping is broken and no other
  check can be trusted;
- any other failed check adds to ``failed_checks``; ``max_failed_checks`` of them
  roll back;
- an inconclusive check holds the step, unless it cannot apply: a check with no
  events of one version (no stable traffic at 100%) is left out. Labelled
  performance is different: labels lag the stream, so an inconclusive
  performance check holds only the *deciding* step, the last one on which stable
  still serves (weight below 100): there it must pass, whatever its sample sizes,
  before the rollout goes on. A step at 100% compares nothing; it soaks for its
  ``min_duration`` and ``min_events``, and no inconclusive check holds it: the few
  stable events a span at 100% may hold are stragglers served across the switch
  (a serving layer's re-read, a mesh's propagation), not a split to judge;
- a step still held ``step_deadline`` past its ``min_duration`` pauses.

The sample-ratio check holds the stream to the share the router reports serving
(:meth:`Router.get_weights`, read when the step is judged), not to the step's
weight: a backend with coarser steps serves a rounded share (the ``replicas``
router with four replicas serves 25% for a 5% step, 75% for 100%), and judged
against the weight a healthy canary would pause. A router that cannot name the
versions it serves (a route, ``manual``) reports no canary, and the step's weight,
which it applies as asked, is used.

A step's span starts when the router applied its split (``applied_at``, recorded
after the call returns, as a run records a job's launch): a crash between a step's
commit and its call, or a router that keeps failing, never lets events served at
the previous weight count for this one; the step waits, and pauses at its deadline.

Router calls made inside a handler (promote, rollback: they report whether the end
state is reached; ``get_weights`` when a step is judged) raise
:class:`retrain.errors.RouterError` out of the handler; the driver records it in a
transaction of its own, as it does for an action's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository, RolloutRow
from drift.canary import Check, Outcome
from retrain.errors import RouterError
from retrain.rollout.base import Router, Target
from retrain.rollout.lifecycle import Fleet, Handler, Phase, Step, target, versions
from retrain.rollout.settings import RolloutStep
from retrain.rollout.span import Span

SAMPLE_RATIO = "sample_ratio"
PERFORMANCE_CHECKS = frozenset({"accuracy_noninferiority", "mae_noninferiority"})


def _weights(rollout: RolloutRow, router: Router, stable: Target, canary: Target) -> Step:
    """A hold that states the step's split again: a crash between a step's commit and its
    router call is repaired on the next tick."""
    percent = rollout.canary_percent
    act = lambda: router.set_weights(stable, canary, percent)  # noqa: E731
    return Step(act=act, applies=rollout.step)


def begin_step(fleet: Fleet, session: Session, rollout: RolloutRow, index: int) -> Step:
    """Enter step ``index``: its weight, its span from now, its deadline."""
    settings = fleet.models[rollout.model]
    step = settings.steps[index]
    now = fleet.clock()
    rollout.step = index
    rollout.canary_percent = step.weight
    rollout.step_started_at = now
    rollout.applied_at = None
    rollout.phase_deadline = now + step.min_duration + settings.step_deadline
    rollout.paused_from = None
    stable, canary = versions(session, rollout)
    hold = _weights(rollout, fleet.routers[rollout.model], target(stable), target(canary))
    hold.phase = Phase.PROGRESSING
    hold.note = f"step {index + 1} of {len(settings.steps)}: {canary.version} at {step.weight}%"
    return hold


def pending(fleet: Fleet, session: Session, rollout: RolloutRow) -> Step:
    return begin_step(fleet, session, rollout, 0)


def progressing(fleet: Fleet, session: Session, rollout: RolloutRow) -> Step:
    settings = fleet.models[rollout.model]
    # A restart with fewer steps configured judges a rollout past them as at the last.
    step = settings.steps[min(rollout.step, len(settings.steps) - 1)]
    now = fleet.clock()
    stable, canary = versions(session, rollout)
    router = fleet.routers[rollout.model]
    hold = _weights(rollout, router, target(stable), target(canary))
    started = rollout.applied_at
    if started is None:
        return _wait(fleet, rollout, "waiting for the router to apply the split", hold)
    if now < started + step.min_duration:
        return hold
    span = Span(
        rollout.model,
        stable.version,
        canary.version,
        started,
        now,
        _served_percent(router, rollout, canary.version),
        settings.task,
    )
    checks = fleet.analyse(session, span, settings.analysis)
    events = max((c.n_canary for c in checks), default=0)
    if events < step.min_events:
        return _wait(fleet, rollout, f"{events} canary events of {step.min_events}", hold)
    RolloutRepository(session).add_analysis(rollout.id, rollout.step, (started, now), checks, now)
    decided = _judge(fleet, session, rollout, checks, hold)
    decided.checks = checks
    return decided


def _served_percent(router: Router, rollout: RolloutRow, canary: str) -> int:
    """The canary's share of traffic the router serves, which the sample-ratio check holds
    the stream to (module docstring)."""
    split = router.get_weights()
    return split.canary_percent if split.canary == canary else rollout.canary_percent


def _judge(
    fleet: Fleet, session: Session, rollout: RolloutRow, checks: Sequence[Check], hold: Step
) -> Step:
    settings = fleet.models[rollout.model]
    srm = [c for c in checks if c.name == SAMPLE_RATIO and c.outcome is Outcome.FAIL]
    if srm:
        return pause(
            rollout,
            f"sample ratio mismatch ({srm[0].reason}): the split or the version stamping is broken",
        )
    failed = [c for c in checks if c.outcome is Outcome.FAIL]
    if failed:
        rollout.failed_checks += len(failed)
        why = "; ".join(f"{c.name}: {c.reason}" for c in failed)
        if rollout.failed_checks >= settings.max_failed_checks:
            reason = f"failed checks at step {rollout.step + 1}: {why}"
            return roll_back(fleet, session, rollout, reason)
        hold.note = f"{rollout.failed_checks} failed check(s) of {settings.max_failed_checks}"
        return hold
    deciding = rollout.step == _deciding(settings.steps)
    full = rollout.canary_percent >= 100
    waiting = [c for c in checks if c.outcome is Outcome.INCONCLUSIVE and _holds(c, deciding, full)]
    if waiting:
        return _wait(fleet, rollout, "; ".join(f"{c.name}: {c.reason}" for c in waiting), hold)
    if rollout.step < len(settings.steps) - 1:
        return begin_step(fleet, session, rollout, rollout.step + 1)
    _, canary = versions(session, rollout)
    router, candidate = fleet.routers[rollout.model], target(canary)
    rollout.phase_deadline = router_deadline(fleet, rollout)
    return Step(
        Phase.PROMOTING,
        f"all {len(settings.steps)} steps passed; promoting {canary.version}",
        lambda: router.promote(candidate),
    )


def _deciding(steps: Sequence[RolloutStep]) -> int:
    """The index of the last step on which stable still serves (-1: none)."""
    return max((i for i, s in enumerate(steps) if s.weight < 100), default=-1)


def _holds(check: Check, deciding: bool, full: bool) -> bool:
    """Whether an inconclusive check holds the step (module docstring)."""
    if check.name in PERFORMANCE_CHECKS:
        return deciding
    # At 100% the stable events in the span are stragglers: requests in flight across
    # the switch, a serving layer's re-read or a mesh's propagation delay. Too few to
    # judge anything, they would hold the step until its deadline paused a healthy
    # rollout.
    return not full and check.n_canary > 0 and check.n_stable > 0


def _wait(fleet: Fleet, rollout: RolloutRow, why: str, hold: Step, late: str = "") -> Step:
    """Hold the phase (``hold``, noted ``why``), or pause once its deadline has passed,
    for ``late`` (default: the step's verdict)."""
    deadline = rollout.phase_deadline
    if deadline is not None and fleet.clock() >= deadline:
        late = late or f"step {rollout.step + 1} without a verdict"
        return pause(rollout, f"{late} by its deadline: {why}")
    hold.note = why
    return hold


def router_deadline(fleet: Fleet, rollout: RolloutRow) -> datetime:
    """When a promotion or a rollback the router has not finished pauses the rollout:
    ``step_deadline`` after it was asked (a router stuck there must not hold the
    model's one active rollout, unseen, for ever)."""
    return fleet.clock() + fleet.models[rollout.model].step_deadline


def _router_wait(fleet: Fleet, rollout: RolloutRow, doing: str, note: str | None) -> Step:
    """Wait for the router to finish ``doing``, or pause once its deadline has passed."""
    why = note or f"waiting for the router to {doing}"
    return _wait(fleet, rollout, why, Step(), f"the router did not {doing}")


def pause(rollout: RolloutRow, reason: str) -> Step:
    """Pause where the rollout is: traffic stays as it is until an operator resumes or
    aborts it."""
    rollout.paused_from = rollout.phase
    rollout.reason = reason
    return Step(Phase.PAUSED, reason)


def roll_back(fleet: Fleet, session: Session, rollout: RolloutRow, reason: str) -> Step:
    stable, _ = versions(session, rollout)
    router, to = fleet.routers[rollout.model], target(stable)
    rollout.reason = reason
    rollout.phase_deadline = router_deadline(fleet, rollout)
    return Step(Phase.ROLLING_BACK, reason, lambda: router.rollback(to))


def promoting(fleet: Fleet, session: Session, rollout: RolloutRow) -> Step:
    """Promoted once the router serves only the canary; the registry moves with it."""
    stable, canary = versions(session, rollout)
    progress = fleet.routers[rollout.model].promote(target(canary))
    if not progress.done:
        return _router_wait(fleet, rollout, "promote", progress.note)
    now = fleet.clock()
    registry = RegistryRepository(session)
    # The production version now, whichever it is (an operator may have changed it).
    current = registry.production(rollout.model)
    if current is not None and current.id != canary.id:
        registry.set_stage(current, Stage.ARCHIVED, now)
    registry.set_stage(canary, Stage.PRODUCTION, now)
    return Step(
        Phase.PROMOTED,
        f"{canary.version} serves all traffic and is production; "
        f"{current.version if current is not None else stable.version} archived",
    )


def rolling_back(fleet: Fleet, session: Session, rollout: RolloutRow) -> Step:
    """Rolled back once the router serves only the stable version; the canary version is
    rejected with it."""
    stable, canary = versions(session, rollout)
    progress = fleet.routers[rollout.model].rollback(target(stable))
    if not progress.done:
        return _router_wait(fleet, rollout, "roll back", progress.note)
    RegistryRepository(session).set_stage(canary, Stage.REJECTED, fleet.clock())
    return Step(
        Phase.ROLLED_BACK,
        f"{stable.version} serves all traffic; {canary.version} rejected: {rollout.reason}",
    )


def paused(fleet: Fleet, session: Session, rollout: RolloutRow) -> Step:
    """Nothing moves until an operator resumes or aborts the rollout."""
    return Step()


def resumed(fleet: Fleet, session: Session, rollout: RolloutRow) -> Step:
    """A paused rollout back where it paused; a step starts again, with a new span."""
    was = Phase(rollout.paused_from or Phase.PENDING)
    rollout.reason = None
    if was in (Phase.PENDING, Phase.PROGRESSING):
        return begin_step(fleet, session, rollout, rollout.step if was is Phase.PROGRESSING else 0)
    rollout.paused_from = None
    if was in (Phase.PROMOTING, Phase.ROLLING_BACK):
        rollout.phase_deadline = router_deadline(fleet, rollout)
    return Step(was, "resumed")


def router_failed(fleet: Fleet, rollout: RolloutRow, exc: RouterError) -> Step:
    """A router call failed: retried on the next tick if it may succeed then, until the
    phase's deadline; else, or past it, the rollout pauses with the error as its reason."""
    if exc.retriable:
        rollout.router_errors += 1
        deadline = rollout.phase_deadline
        if deadline is None or fleet.clock() < deadline:
            return Step(note=f"router error {rollout.router_errors}, retrying: {exc}")
        tries = rollout.router_errors
        return pause(rollout, f"router error past the deadline, after {tries} tries: {exc}")
    return pause(rollout, f"router error: {exc}")


HANDLERS: Mapping[Phase, Handler] = {
    Phase.PENDING: pending,
    Phase.PROGRESSING: progressing,
    Phase.PAUSED: paused,
    Phase.PROMOTING: promoting,
    Phase.ROLLING_BACK: rolling_back,
}
