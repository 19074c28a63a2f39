"""The analysis verdict an external controller reads (Argo Rollouts' ``web`` metric, a
Flagger webhook): one of pass / fail / inconclusive for a span's checks, for a rollout's
current step or for any stable/canary version pair of a model.

The checks are the rollout's own (:data:`retrain.rollout.span.Analyse`); the verdict
folds them as the state machine judges a step (:mod:`retrain.rollout.phases`):

- any failed check fails;
- else an inconclusive check holds (inconclusive) when it applies: both versions had
  events for it. A check with no events of one version cannot apply (at 100 % stable
  serves nothing) and is left out, except labelled performance of a model whose labels
  are joined, below 100 %: labels lag the stream, so no labelled pairs yet means "not
  yet", never "pass";
- else pass, if at least one check passed; a span where nothing could be measured is
  inconclusive (a controller must never read "nothing failed" as a pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from db.rollouts import RolloutRow
from drift.canary import Check, Outcome
from retrain.rollout.lifecycle import Phase, versions
from retrain.rollout.phases import PERFORMANCE_CHECKS, SAMPLE_RATIO
from retrain.rollout.settings import RolloutSettings
from retrain.rollout.span import Analyse, Span


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome, one line saying why, the checks it was folded from (in the order
    the analysis gave them) and the span they judged (None: nothing was analysed)."""

    outcome: Outcome
    reason: str
    checks: tuple[Check, ...] = ()
    span: Span | None = None


def _applies(check: Check, labels: bool, percent: int | None) -> bool:
    if check.n_canary > 0 and check.n_stable > 0:
        return True
    if check.name in PERFORMANCE_CHECKS:
        return labels and (percent is None or percent < 100)
    return False


def judge(checks: Sequence[Check], *, labels: bool, percent: int | None) -> Verdict:
    """Fold ``checks`` (module docstring). ``labels``: the model's labels are joined;
    ``percent``: the canary's share of traffic (None: not known)."""
    failed = [c for c in checks if c.outcome is Outcome.FAIL]
    if failed:
        why = "; ".join(f"{c.name}: {c.reason}" for c in failed)
        return Verdict(Outcome.FAIL, f"failed: {why}", tuple(checks))
    waiting = [
        c for c in checks if c.outcome is Outcome.INCONCLUSIVE and _applies(c, labels, percent)
    ]
    if waiting:
        why = "; ".join(f"{c.name}: {c.reason}" for c in waiting)
        return Verdict(Outcome.INCONCLUSIVE, f"inconclusive: {why}", tuple(checks))
    passed = [c.name for c in checks if c.outcome is Outcome.PASS]
    if not passed:
        why = "; ".join(f"{c.name}: {c.reason}" for c in checks) or "no checks"
        return Verdict(
            Outcome.INCONCLUSIVE, f"inconclusive: nothing measured ({why})", tuple(checks)
        )
    return Verdict(Outcome.PASS, f"passed: {', '.join(passed)}", tuple(checks))


def of_span(
    session: Session,
    span: Span,
    settings: RolloutSettings,
    analyse: Analyse,
    *,
    labels: bool,
    check_split: bool = True,
) -> Verdict:
    """The verdict of ``span``'s checks; ``check_split`` False leaves the sample-ratio
    check out (its expected share, the span's ``canary_percent``, is not known)."""
    checks = analyse(session, span, settings.analysis)
    if not check_split:
        checks = [c for c in checks if c.name != SAMPLE_RATIO]
    percent = span.canary_percent if check_split else None
    verdict = judge(checks, labels=labels, percent=percent)
    return Verdict(verdict.outcome, verdict.reason, verdict.checks, span)


def of_rollout(
    session: Session,
    rollout: RolloutRow,
    settings: RolloutSettings,
    analyse: Analyse,
    *,
    labels: bool,
    now: datetime,
) -> Verdict:
    """A finished rollout's verdict is how it ended (promoted: pass, rolled back: fail);
    an active one's is the analysis of its current step's span, [``applied_at``, now)
    at its weight, as the rollout's next tick would judge it (inconclusive while the
    step's split is not applied yet)."""
    phase = Phase(rollout.phase)
    if phase is Phase.PROMOTED:
        return Verdict(Outcome.PASS, f"rollout {rollout.id} was promoted")
    if phase is Phase.ROLLED_BACK:
        return Verdict(Outcome.FAIL, f"rollout {rollout.id} was rolled back: {rollout.reason}")
    if rollout.applied_at is None:
        return Verdict(
            Outcome.INCONCLUSIVE,
            f"inconclusive: rollout {rollout.id} is {phase}; the split of step "
            f"{rollout.step + 1} is not applied yet",
        )
    stable, canary = versions(session, rollout)
    span = Span(
        rollout.model,
        stable.version,
        canary.version,
        rollout.applied_at,
        now,
        rollout.canary_percent,
        settings.task,
    )
    return of_span(session, span, settings, analyse, labels=labels)
