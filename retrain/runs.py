"""The run lifecycle: a persisted state machine, one handler per phase.

    pending ──► training ──► validating ──► accepted | rejected
       │            │             │
       └────────────┴─────────────┴──► failed      (and cancelled, by an operator)

Each tick takes every active run one step at most. A step runs in one
transaction that holds the run's row (PostgreSQL: ``FOR UPDATE``, so two
replicas ticking at once take turns): the handler observes the world, writes
the transition, its history row and the alert it causes, and commits; only
then does it act (export the run's data, launch or cancel a job). Once a launch
returns, a second transaction records it on the run (``train_launched_at`` /
``validate_launched_at``). The export, which can take minutes, runs outside
the row lock too (so ``runs cancel`` never waits for it): the pending phase
asks for it and commits, the export writes a partial file and renames it, and
a later tick finds the renamed file and starts training; a failed export is
recorded in a transaction of its own, on the run as it is by then. In the
service the export runs beside the tick (:mod:`retrain.exports`), so other
runs' steps do not wait for it. Every
action is idempotent, and a job is known by its deterministic name, so a crash
at any point resumes: an export cut short is redone, a job launched before
the crash is adopted, a finished one is read again, one ``missing`` with no
launch recorded was never launched and is launched now, and one ``missing``
although its launch was recorded is lost (deleted before its result was read)
and fails the run rather than train twice. The rollout issue continues from
``accepted``: an ``on_accepted`` hook (the rollout driver's) acts in the transaction
that accepts a run, so a rollout starts with its verdict or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertOutbox
from db.registry import RegistryRepository, Stage
from db.runs import RetrainRunRow, RunRepository
from db.session import transaction
from retrain.executors.base import JobSpec
from retrain.exports import Exports, InlineExports
from retrain.isolation import step_each
from retrain.lifecycle import Handler, Loop, Phase, Step
from retrain.phases import HANDLERS, export, export_failed

log = logging.getLogger(__name__)


# Alerts go out for the outcomes someone should look at.
_ALERTED = {
    Phase.ACCEPTED: "run_accepted",
    Phase.REJECTED: "run_rejected",
    Phase.FAILED: "run_failed",
}

# A candidate version of a run that ends this way was never judged good: it is rejected
# with the run (in the same transaction), so no candidate outlives its run.
_ENDS_CANDIDATE = frozenset({Phase.FAILED, Phase.CANCELLED})

Decide = Callable[[Session, RetrainRunRow], Step]
# Called in the transaction that accepts a run, with the run and the time.
OnAccepted = Callable[[Session, RetrainRunRow, datetime], None]


class RunObserver(Protocol):
    """What the driver reports; :class:`service.metric_feeds.RetrainMetrics` exports it.

    ``finished`` is called once for each transition to a final phase that this
    driver committed, after the commit: a run finished by another replica, or
    before a restart, is not reported again.
    """

    def finished(self, model: str, trigger: str, outcome: str) -> None: ...

    def active(self, counts: Mapping[str, int]) -> None: ...


class NoRunObserver:
    def finished(self, model: str, trigger: str, outcome: str) -> None:
        pass

    def active(self, counts: Mapping[str, int]) -> None:
        pass


class RunDriver:
    """Advances active runs, one transition per run per tick."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        loop: Loop,
        handlers: Mapping[Phase, Handler] | None = None,
        observer: RunObserver | None = None,
        on_accepted: OnAccepted | None = None,
        exports: Exports | None = None,
    ) -> None:
        self.sessions = sessions
        self.exports: Exports = exports or InlineExports()
        self.loop = loop
        self.handlers = dict(handlers or HANDLERS)
        self.observer: RunObserver = observer or NoRunObserver()
        self.on_accepted = on_accepted

    def tick(self) -> dict[int, Phase]:
        """One step of every active run of a configured model; each run's phase after it.
        A run whose step raises holds back no other's (:mod:`retrain.isolation`)."""
        with transaction(self.sessions) as session:
            runs = [(r.id, r.model) for r in RunRepository(session).active()]
        ids = [(run_id, model) for run_id, model in runs if model in self.loop.models]
        phases, error = step_each([run_id for run_id, _ in ids], self.step, "run")
        self.exports.keep_only({run_id for run_id, _ in ids})
        active = dict.fromkeys(self.loop.models, 0)
        for run_id, model in ids:
            if run_id not in phases or not phases[run_id].final:
                active[model] += 1
        self.observer.active(active)
        if error is not None:
            raise error
        return phases

    def step(self, run_id: int) -> Phase:
        """One step of one run; its phase after the step."""
        phase, step = self._decide(
            run_id, lambda s, run: self.handlers[Phase(run.phase)](self.loop, s, run)
        )
        if step is None:
            return phase
        if step.act is not None:
            step.act()
        if step.export is not None:
            due = step.export
            ended = self.exports.run(run_id, lambda: export(self.loop, due))
            if ended is None:
                return phase  # under way: a later tick collects it
            failure = ended.failure
            # On the run as it is now (a cancel may have ended it meanwhile): a failure is
            # recorded; a finished export waits for the next tick, which finds its file.
            phase, _ = self._decide(
                run_id,
                lambda _s, run: (
                    Step() if failure is None else export_failed(self.loop, run, failure)
                ),
                Phase.PENDING,
            )
        if step.launch is not None:
            self._launch(step.launch)
        return phase

    def _decide(
        self, run_id: int, decide: Decide, only: Phase | None = None
    ) -> tuple[Phase, Step | None]:
        """One transaction holding the run's row: ``decide`` on the run (an active one, in
        phase ``only`` if given), record the transition it chose and commit. The phase
        after it, and the step (None when the run was not in a phase to decide on)."""
        with transaction(self.sessions) as session:
            run = RunRepository(session).get(run_id, lock=True)
            if run is None:
                raise LookupError(f"no run {run_id}")
            phase = Phase(run.phase)
            if phase.final or (only is not None and phase is not only):
                return phase, None
            step = decide(session, run)
            if step.phase is not None:
                self._enter(session, run, step.phase, step.note)
                phase = step.phase
            model, trigger = run.model, run.trigger
        if step.phase is not None and step.phase.final:
            self.observer.finished(model, trigger, str(step.phase))
        return phase, step

    def _launch(self, spec: JobSpec) -> None:
        """Launch the job, then record that it was launched, in a transaction of its own:
        the record is what later tells a job deleted after it ran from one never launched.
        A crash between the two leaves no record; the job is adopted and recorded when
        next seen running (:func:`retrain.phases._waiting`)."""
        if not self.loop.executor.launch(spec):
            return  # refused: observe reports why, and the run fails with it
        with transaction(self.sessions) as session:
            RunRepository(session).record_launch(spec.run_id, spec.mode, self.loop.clock())

    def _enter(self, session: Session, run: RetrainRunRow, phase: Phase, note: str) -> None:
        now = self.loop.clock()
        m = self.loop.models[run.model]
        timeout = {Phase.TRAINING: m.train_timeout, Phase.VALIDATING: m.validate_timeout}.get(phase)
        RunRepository(session).enter(
            run, phase, note, now, final=phase.final, deadline=now + timeout if timeout else None
        )
        if phase in _ENDS_CANDIDATE:
            self._reject_candidate(session, run, now)
        kind = _ALERTED.get(phase)
        if kind is not None:
            AlertOutbox(session).add(
                f"run-{run.id}-{phase}",
                kind,
                run.model,
                f"retrain run {run.id} of {run.model} {phase}: {note}",
                now,
                run_id=run.id,
                payload={"run_id": run.id, "phase": str(phase), "verdict": run.verdict},
            )
        if phase is Phase.ACCEPTED and self.on_accepted is not None:
            self.on_accepted(session, run, now)
        log.info("run %d of %s: %s (%s)", run.id, run.model, phase, note)

    @staticmethod
    def _reject_candidate(session: Session, run: RetrainRunRow, now: datetime) -> None:
        """A run that ends without a verdict leaves no candidate waiting for one."""
        if run.candidate_version_id is None:
            return
        registry = RegistryRepository(session)
        version = registry.by_id(run.candidate_version_id)
        if version is not None and version.stage == Stage.CANDIDATE:
            registry.set_stage(version, Stage.REJECTED, now)

    def cancel(self, run_id: int, reason: str) -> Phase:
        """Cancel an active run and its jobs; a finished run is left as it is."""
        with transaction(self.sessions) as session:
            run = RunRepository(session).get(run_id, lock=True)
            if run is None:
                raise LookupError(f"no run {run_id}")
            if Phase(run.phase).final:
                return Phase(run.phase)
            specs = [self.loop.train_spec(run, session), self.loop.validate_spec(run, session)]
            self._enter(session, run, Phase.CANCELLED, reason)
            model, trigger = run.model, run.trigger
        self.observer.finished(model, trigger, str(Phase.CANCELLED))
        for spec in specs:
            self.loop.executor.cancel(spec)
        return Phase.CANCELLED
