"""The rollout driver: a persisted state machine that moves live traffic to an accepted
candidate step by step, one transition per rollout per tick.

As with runs (:mod:`retrain.runs`), a step runs in one transaction that holds the
rollout's row (PostgreSQL: ``FOR UPDATE``): the handler observes (the analysis, a
promotion's or rollback's progress), writes the transition, its history row, the
analysis it judged, the alert it causes and the registry change it makes, and
commits; only then does the driver make the router call the step asked for. Every
router call states an end state, so a crash anywhere resumes: a step whose split
was never applied states it again on the next tick, and the final phases
(``promoted``, ``rolled_back``) are entered only on a tick on which the router
confirmed the end state, so no canary keeps traffic once its rollout is over.

A rollout starts in the transaction that accepts its run when the model's rollout
is enabled (:meth:`RolloutDriver.on_accepted`, given to the run driver), or by
:meth:`RolloutDriver.start`; the candidate becomes stage ``canary`` with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertOutbox
from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository, RolloutRow
from db.runs import RetrainRunRow, RunRepository
from db.session import transaction
from drift.canary import Check
from retrain.errors import RolloutRefused, RouterError
from retrain.isolation import step_each
from retrain.rollout.lifecycle import Fleet, Handler, Phase, Step, target, versions
from retrain.rollout.phases import (
    HANDLERS,
    pause,
    resumed,
    roll_back,
    router_deadline,
    router_failed,
)

log = logging.getLogger(__name__)

# Alerts go out for what someone should know of; a pause or a rollback needs a person.
_ALERTED = {
    Phase.PAUSED: "rollout_paused",
    Phase.PROMOTED: "rollout_promoted",
    Phase.ROLLED_BACK: "rollout_rolled_back",
}

Decide = Callable[[Session, RolloutRow], Step]


class RolloutObserver(Protocol):
    """What the driver reports, after its commits; :class:`service.metric_feeds.RolloutMetrics`
    exports it. ``state`` after every tick, per configured model: the phase of its
    active rollout (None: none) and the canary's weight; ``analysed`` the checks of
    each analysis this driver stored."""

    def state(self, model: str, phase: str | None, canary_percent: int) -> None: ...

    def analysed(self, model: str, checks: Sequence[Check]) -> None: ...


class NoRolloutObserver:
    def state(self, model: str, phase: str | None, canary_percent: int) -> None:
        pass

    def analysed(self, model: str, checks: Sequence[Check]) -> None:
        pass


class RolloutDriver:
    """Starts rollouts and advances the active ones, one transition per rollout per tick."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        fleet: Fleet,
        handlers: Mapping[Phase, Handler] | None = None,
        observer: RolloutObserver | None = None,
    ) -> None:
        self.sessions = sessions
        self.fleet = fleet
        self.handlers = dict(handlers or HANDLERS)
        self.observer: RolloutObserver = observer or NoRolloutObserver()

    def tick(self) -> dict[int, Phase]:
        """One step of every active rollout of a configured model; each one's phase after it.
        A rollout whose step raises holds back no other's (:mod:`retrain.isolation`)."""
        with transaction(self.sessions) as session:
            active = RolloutRepository(session).active()
            ids = [r.id for r in active if r.model in self.fleet.models]
        phases, error = step_each(ids, self.step, "rollout")
        self._report()
        if error is not None:
            raise error
        return phases

    def _report(self) -> None:
        with transaction(self.sessions) as session:
            active = RolloutRepository(session).active()
            now = {r.model: (r.phase, r.canary_percent) for r in active}
        for model in self.fleet.models:
            phase, percent = now.get(model, (None, 0))
            self.observer.state(model, phase, percent)

    def step(self, rollout_id: int) -> Phase:
        """One step of one rollout; its phase after the step."""
        try:
            phase, step = self._decide(
                rollout_id, lambda s, r: self.handlers[Phase(r.phase)](self.fleet, s, r)
            )
        except RouterError as exc:
            return self._router_failed(rollout_id, exc)
        if step is not None and step.checks:
            self.observer.analysed(self._model(rollout_id), step.checks)
        return self._act(rollout_id, step, phase)

    def _model(self, rollout_id: int) -> str:
        with transaction(self.sessions) as session:
            rollout = RolloutRepository(session).get(rollout_id)
            assert rollout is not None
            return rollout.model

    def _router_failed(self, rollout_id: int, exc: RouterError) -> Phase:
        """Recorded on the rollout as it is now, in a transaction of its own."""
        phase, _ = self._decide(rollout_id, lambda _s, r: router_failed(self.fleet, r, exc))
        return phase

    def _decide(
        self, rollout_id: int, decide: Decide, only: frozenset[Phase] | None = None
    ) -> tuple[Phase, Step | None]:
        """One transaction holding the rollout's row: ``decide`` on it (an active one, in
        one of the phases ``only`` if given), record the transition it chose and commit.
        The phase after it, and the step (None when it was not in a phase to decide on)."""
        with transaction(self.sessions) as session:
            rollout = RolloutRepository(session).get(rollout_id, lock=True)
            if rollout is None:
                raise LookupError(f"no rollout {rollout_id}")
            phase = Phase(rollout.phase)
            if phase.final or (only is not None and phase not in only):
                return phase, None
            step = decide(session, rollout)
            if step.phase is not None:
                self._enter(session, rollout, step.phase, step.note)
                phase = step.phase
            elif step.note:
                log.info("rollout %d of %s: %s", rollout.id, rollout.model, step.note)
        return phase, step

    def _enter(self, session: Session, rollout: RolloutRow, phase: Phase, note: str) -> None:
        now = self.fleet.clock()
        repository = RolloutRepository(session)
        repository.enter(rollout, phase, note, now, final=phase.final)
        kind = _ALERTED.get(phase)
        if kind is not None:
            # A rollout may pause more than once: each pause is its own alert.
            n = len(repository.history(rollout.id))
            key = f"rollout-{rollout.id}-{phase}" + (f"-{n}" if phase is Phase.PAUSED else "")
            self._alert(session, rollout, key, kind, f"{phase}: {note}", now)
        log.info("rollout %d of %s: %s (%s)", rollout.id, rollout.model, phase, note)

    @staticmethod
    def _alert(
        session: Session, rollout: RolloutRow, key: str, kind: str, what: str, now: datetime
    ) -> None:
        AlertOutbox(session).add(
            key,
            kind,
            rollout.model,
            f"rollout {rollout.id} of {rollout.model} {what}",
            now,
            run_id=rollout.run_id,
            payload={
                "rollout_id": rollout.id,
                "phase": rollout.phase,
                "step": rollout.step + 1,
                "canary_percent": rollout.canary_percent,
            },
        )

    def begin(self, session: Session, run: RetrainRunRow, now: datetime) -> RolloutRow:
        """Start the rollout of ``run``'s candidate in the caller's transaction: the
        candidate becomes stage ``canary`` and ``rollout_started`` is queued with it.
        Raises :class:`RolloutRefused` (and changes nothing) when it cannot start."""
        if run.model not in self.fleet.models:
            raise RolloutRefused(f"model {run.model} has no rollout settings")
        registry = RegistryRepository(session)
        candidate = registry.by_id(run.candidate_version_id) if run.candidate_version_id else None
        if candidate is None or candidate.stage != Stage.CANDIDATE:
            stage = "none" if candidate is None else candidate.stage
            raise RolloutRefused(
                f"run {run.id} of {run.model} has no candidate awaiting a rollout ({stage})"
            )
        stable = registry.production(run.model)
        if stable is None:
            raise RolloutRefused(f"model {run.model} has no production version to roll out from")
        note = f"rolling out {candidate.version} of run {run.id} against {stable.version}"
        rollout = RolloutRepository(session).start(
            run.model, run.id, stable.id, candidate.id, Phase.PENDING, note, now
        )
        if rollout is None:
            raise RolloutRefused(f"model {run.model} has an active rollout already")
        registry.set_stage(candidate, Stage.CANARY, now)
        self._alert(session, rollout, f"rollout-{rollout.id}-started", "rollout_started", note, now)
        log.info("rollout %d of %s: started (%s)", rollout.id, run.model, note)
        return rollout

    def on_accepted(self, session: Session, run: RetrainRunRow, now: datetime) -> None:
        """The run driver's hook, in the transaction that accepts ``run``: start its
        rollout when the model's rollout is enabled. A refusal leaves the run accepted,
        its candidate waiting for ``start``; the reason is logged."""
        settings = self.fleet.models.get(run.model)
        if settings is None or not settings.enabled:
            return
        try:
            self.begin(session, run, now)
        except RolloutRefused as exc:
            log.warning("run %d of %s accepted, no rollout started: %s", run.id, run.model, exc)

    def start(self, model: str, run_id: int) -> int:
        """Start the rollout of an accepted run's candidate; the new rollout's id."""
        with transaction(self.sessions) as session:
            run = RunRepository(session).get(run_id)
            if run is None or run.model != model:
                raise RolloutRefused(f"model {model} has no run {run_id}")
            return self.begin(session, run, self.fleet.clock()).id

    def resume(self, rollout_id: int, *, act: bool = True) -> Phase:
        """Resume a paused rollout where it paused (a step starts over, with a new span);
        the router call the resumed phase needs is made after the commit (``act``
        False: left to the next tick, see the note on ``act`` below)."""
        phase, step = self._decide(
            rollout_id, lambda s, r: resumed(self.fleet, s, r), frozenset({Phase.PAUSED})
        )
        if step is None:
            raise RolloutRefused(f"rollout {rollout_id} is {phase}, not paused")
        return self._act(rollout_id, step, phase) if act else phase

    # ``act`` of resume, abort and promote: every router call a transition asks for is
    # also the call its new phase's handler makes on each tick (a step states its split,
    # ``promoting`` asks promote, ``rolling_back`` asks rollback), so a transition
    # recorded without its call is carried out by the next tick. A process that is not
    # the leader (the HTTP API on any replica) records only: then every router call is
    # the leader's, made in the order of its ticks, and a late call of another process
    # can never put a canary back on traffic after the leader rolled it back.

    def abort(self, rollout_id: int, reason: str, *, act: bool = True) -> Phase:
        """Roll an active rollout back (its canary is rejected once the router confirms)."""
        active = frozenset({Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING})
        phase, step = self._decide(
            rollout_id, lambda s, r: roll_back(self.fleet, s, r, f"aborted: {reason}"), active
        )
        if step is None:
            raise RolloutRefused(f"rollout {rollout_id} is {phase}: nothing to abort")
        return self._act(rollout_id, step, phase) if act else phase

    def pause(self, rollout_id: int, reason: str) -> Phase:
        """Pause an active rollout where it is, by hand."""
        active = frozenset({Phase.PENDING, Phase.PROGRESSING, Phase.PROMOTING, Phase.ROLLING_BACK})
        phase, step = self._decide(rollout_id, lambda _s, r: pause(r, reason), active)
        if step is None:
            raise RolloutRefused(f"rollout {rollout_id} is {phase}: nothing to pause")
        return phase

    def promote(self, rollout_id: int, reason: str, *, act: bool = True) -> Phase:
        """Promote a progressing or paused rollout by hand, skipping its remaining steps;
        the router's promotion is asked after the commit (``act``) and confirmed by the
        next ticks, as at the end of the last step."""
        only = frozenset({Phase.PROGRESSING, Phase.PAUSED})
        phase, step = self._decide(rollout_id, lambda s, r: self._promoting(s, r, reason), only)
        if step is None:
            raise RolloutRefused(
                f"rollout {rollout_id} is {phase}: only a progressing or paused rollout "
                "can be promoted"
            )
        return self._act(rollout_id, step, phase) if act else phase

    def _promoting(self, session: Session, rollout: RolloutRow, reason: str) -> Step:
        if rollout.paused_from == Phase.ROLLING_BACK:
            # Its analysis failed it, or an operator aborted it: that verdict stands.
            raise RolloutRefused(
                f"rollout {rollout.id} was paused while rolling back: resume the rollback; "
                "a rolled-back candidate is not promoted"
            )
        _, canary = versions(session, rollout)
        router, candidate = self.fleet.routers[rollout.model], target(canary)
        # A paused rollout promoted by hand resumes nothing: its pause is over.
        rollout.paused_from = None
        rollout.phase_deadline = router_deadline(self.fleet, rollout)
        rollout.reason = reason
        return Step(
            Phase.PROMOTING,
            f"promoted by hand at step {rollout.step + 1} ({rollout.canary_percent}%): "
            f"{reason}; promoting {canary.version}",
            lambda: router.promote(candidate),
        )

    def _act(self, rollout_id: int, step: Step | None, phase: Phase) -> Phase:
        """Make the step's router call; a split it states is recorded as applied in a
        transaction of its own (the start of the step's span)."""
        if step is None or step.act is None:
            return phase
        try:
            step.act()
        except RouterError as exc:
            return self._router_failed(rollout_id, exc)
        if step.applies is not None:
            with transaction(self.sessions) as session:
                RolloutRepository(session).record_applied(
                    rollout_id, step.applies, self.fleet.clock()
                )
        return phase
