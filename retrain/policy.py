"""The trigger policy: which causes start a retraining run, and which are suppressed.

Causes, per model (each can be turned off in ``models.<name>.retrain``):

- ``drift``: the newest ``drift_windows`` drift reports all found dataset drift;
  keyed by the newest report, so a streak that goes on is a new cause per window;
- ``degradation``: the newest performance report whose degradation test failed;
- ``concept_alarm``: the newest streaming detector alarm;
- ``cron``: the latest fire time of the crontab line (APScheduler's ``CronTrigger``);
- ``manual``: an operator's request (``driftwatch retrain``).

Guards on every automatic cause: no active run of the model, the cooldown since
the last run finished, and at least ``min_new_labels`` labelled events since the
last run's data ended (joined pairs, counted by prediction window). A manual
request passes only the first: the operator asked. At most one run starts per
model per tick.

Each decision, fired or suppressed with why, is stored once per cause; that
row's unique key and the one-active-run index are what keep two replicas and
a repeated tick from starting two runs. A suppressed cause that is still the
newest of its kind is looked at again each tick; once its guards pass, its row
turns ``fired`` by compare-and-set (one replica wins) and the run starts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertOutbox
from db.repository import savepoint
from db.runs import RunRepository
from db.session import transaction
from db.triggers import Cause, DecisionRepository, TriggerDecision, TriggerInputs
from retrain.errors import RunRefused
from retrain.isolation import step_each
from retrain.lifecycle import Phase
from retrain.settings import ModelRetrain
from retrain.training_range import LabeledWindow, TrainingRange, choose

log = logging.getLogger(__name__)

RETRAIN_STARTED = "retrain_started"


class _Lost(Exception):
    """Another replica acted first: the savepoint is rolled back."""


# How far back a cron schedule is replayed when the model has no cron decision yet.
_CRON_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Decision:
    model: str
    cause: str
    key: str
    decision: TriggerDecision
    reason: str
    run_id: int | None

    @property
    def fired(self) -> bool:
        return self.decision is TriggerDecision.FIRED


class TriggerPolicy:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        models: Mapping[str, ModelRetrain],
        clock: Callable[[], datetime],
    ) -> None:
        self.sessions = sessions
        self.models = models
        self.clock = clock

    def tick(self) -> list[Decision]:
        """Decide every new cause of every enabled model; the decisions made. A model
        whose decision raises holds back no other's (:mod:`retrain.isolation`)."""

        def decide(model: str) -> list[Decision]:
            with transaction(self.sessions) as session:
                return self._decide(session, self.models[model])

        enabled = [name for name, m in self.models.items() if m.enabled]
        done, error = step_each(enabled, decide, "model")
        if error is not None:
            raise error
        return [d for name in enabled for d in done.get(name, [])]

    def request(self, model: str, reason: str, key: str | None = None) -> Decision:
        """A manual request: starts a run unless one is active (then says which)."""
        m = self.models.get(model)
        if m is None:
            raise RunRefused(f"model {model} has no retrain settings")
        cause = Cause(model, "manual", key or f"manual-{uuid.uuid4().hex}", reason, {})
        with transaction(self.sessions) as session:
            decision = self._apply(session, m, cause, guard=None)
        if decision is None:  # the same request key, decided before: report that decision
            with transaction(self.sessions) as session:
                stored = DecisionRepository(session).get(cause)
                assert stored is not None
                return Decision(
                    model,
                    "manual",
                    stored.cause_key,
                    TriggerDecision(stored.decision),
                    stored.reason,
                    stored.run_id,
                )
        return decision

    def _decide(self, session: Session, m: ModelRetrain) -> list[Decision]:
        decisions = DecisionRepository(session)
        made: list[Decision] = []
        for cause in self._causes(session, m):
            stored = decisions.get(cause)
            if stored is not None and (
                stored.decision == TriggerDecision.FIRED or stored.run_id is not None
            ):
                continue
            fired = next((d for d in made if d.fired), None)
            guard: str | None
            if fired is not None:
                guard = f"run {fired.run_id} started this tick by cause {fired.cause}"
            else:
                guard = self._guard(session, m, cause)
            if stored is None:
                decision = self._apply(session, m, cause, guard)
            elif guard is None:
                decision = self._retry(session, m, cause, stored.id, stored.reason)
            else:
                continue  # still held back; its stored reason stands until it fires
            if decision is not None:
                made.append(decision)
                log.info(
                    "retrain %s: %s on %s (%s)",
                    m.model,
                    decision.decision,
                    cause.kind,
                    decision.reason,
                )
        return made

    def _retry(
        self, session: Session, m: ModelRetrain, cause: Cause, decision_id: int, held: str
    ) -> Decision | None:
        """Fire a cause suppressed before whose guards now pass (its held-back reason is
        kept in the new one); None when a run is active or another replica fired it."""
        # Not a retry loop (no attempts, waits or deadline): a policy decision re-taken once
        # per tick, so a retry library (tenacity, as the flush uses) has nothing to do here.
        now = self.clock()
        reason = f"{cause.summary} (held back before: {held})"
        try:
            with savepoint(session):
                run = self._start(session, m, cause, now)
                if run is None or not DecisionRepository(session).fire(decision_id, reason, run):
                    raise _Lost
        except _Lost:
            return None
        return Decision(m.model, cause.kind, cause.key, TriggerDecision.FIRED, reason, run)

    def _apply(
        self, session: Session, m: ModelRetrain, cause: Cause, guard: str | None
    ) -> Decision | None:
        """Store the decision on ``cause`` and start its run; None when another replica
        decided the cause first."""
        now = self.clock()
        reason = guard or cause.summary
        row = DecisionRepository(session).add(
            cause, TriggerDecision.SUPPRESSED if guard else TriggerDecision.FIRED, reason, now
        )
        if row is None:
            return None
        if guard is None:
            run = self._start(session, m, cause, now)
            if run is None:
                active = RunRepository(session).active(m.model)
                row.decision = TriggerDecision.SUPPRESSED
                row.reason = f"run {active[0].id if active else '?'} is active"
            else:
                row.run_id = run
            session.flush()
        return Decision(
            m.model, cause.kind, cause.key, TriggerDecision(row.decision), row.reason, row.run_id
        )

    def _start(self, session: Session, m: ModelRetrain, cause: Cause, now: datetime) -> int | None:
        data = self._range(session, m, cause, now)
        run = RunRepository(session).start(
            m.model,
            cause.kind,
            cause.summary,
            data.start,
            data.end,
            Phase.PENDING,
            now,
            change_onset=data.onset,
            data_note=data.note,
        )
        if run is None:
            return None
        # In the run's own transaction: the run and its "started" alert exist together.
        AlertOutbox(session).add(
            f"run-{run.id}-started",
            RETRAIN_STARTED,
            m.model,
            f"retrain run {run.id} of {m.model} started ({cause.kind}): {cause.summary}",
            now,
            run_id=run.id,
            payload={
                "run_id": run.id,
                "trigger": cause.kind,
                "cause_key": cause.key,
                "data_from": run.data_from.isoformat(),
                "data_to": run.data_to.isoformat(),
                "change_onset": None if data.onset is None else data.onset.isoformat(),
                "data_note": data.note,
            },
        )
        return run.id

    @staticmethod
    def _range(session: Session, m: ModelRetrain, cause: Cause, now: datetime) -> TrainingRange:
        """The run's data: from the cause's onset to the newest labelled window's end
        (:mod:`retrain.training_range`)."""
        inputs = TriggerInputs(session)
        end = inputs.newest_labeled_end(m.model) or now
        windows = [
            LabeledWindow(s, e, n)
            for s, e, n in inputs.labeled_windows(m.model, end - m.data_window, end)
        ]
        return choose(cause.kind, cause.onset, end, m.data_window, m.min_train_rows, windows)

    def _guard(self, session: Session, m: ModelRetrain, cause: Cause) -> str | None:
        """Why an automatic cause must not start a run now; None when it may.

        New labels are counted from the last run's data end, and not before the
        cause's onset (the first window of its streak of drifted or degraded
        reports, the first alarm since that run), the window holding the onset
        included: a run should learn the changed world, so it waits until enough
        of it is labelled, and no longer; the next window's cause is decided again.
        """
        runs = RunRepository(session)
        active = runs.active(m.model)
        if active:
            return f"run {active[0].id} is active ({active[0].phase})"
        finished = runs.last_finished_at(m.model)
        now = self.clock()
        if finished is not None and now < finished + m.cooldown:
            return (
                f"cooldown: the last run finished at {finished.isoformat()}, "
                f"next run allowed from {(finished + m.cooldown).isoformat()}"
            )
        last = runs.latest(m.model)
        bounds = [t for t in (None if last is None else last.data_to, cause.onset) if t is not None]
        since = max(bounds) if bounds else None
        labeled = TriggerInputs(session).labeled_since(m.model, since)
        if labeled < m.min_new_labels:
            after = "" if since is None else f" since {since.isoformat()}"
            return f"{labeled} new labelled events{after}, {m.min_new_labels} needed"
        return None

    def _causes(self, session: Session, m: ModelRetrain) -> list[Cause]:
        inputs = TriggerInputs(session)
        last = RunRepository(session).latest(m.model)
        last_end = None if last is None else last.data_to
        causes: list[Cause] = []
        if m.drift_windows > 0:
            streak = inputs.drift_streak(m.model, m.drift_windows)
            if streak:
                newest = streak[0]
                causes.append(
                    Cause(
                        m.model,
                        "drift",
                        f"drift-report-{newest.id}",
                        f"dataset drift in {len(streak)} consecutive windows up to the one "
                        f"at {newest.window_start.isoformat()}",
                        {"drift_reports": [r.id for r in streak]},
                        onset=inputs.drift_onset(m.model),
                    )
                )
        if m.on_degradation and (report := inputs.newest_degraded(m.model)) is not None:
            evidence = {"performance_reports": [report.id]}
            if report.drift_report_id is not None:
                evidence["drift_reports"] = [report.drift_report_id]
            causes.append(
                Cause(
                    m.model,
                    "degradation",
                    f"performance-report-{report.id}",
                    f"performance degraded in the window at {report.window_start.isoformat()}: "
                    f"{report.verdict}",
                    evidence,
                    onset=inputs.degraded_onset(m.model),
                )
            )
        if m.on_concept_alarm and (alarm := inputs.newest_alarm(m.model)) is not None:
            causes.append(
                Cause(
                    m.model,
                    "concept_alarm",
                    f"concept-alarm-{alarm.id}",
                    f"concept-drift alarm of {alarm.detector} on {alarm.model_version} at "
                    f"{alarm.prediction_time.isoformat()}",
                    {"concept_drift_alarms": [alarm.id]},
                    onset=inputs.first_alarm_after(m.model, last_end),
                )
            )
        if m.cron is not None and (fire := self._cron_due(session, m)) is not None:
            causes.append(
                Cause(
                    m.model,
                    "cron",
                    fire.isoformat(),
                    f"schedule {m.cron!r} at {fire.isoformat()}",
                    {},
                )
            )
        return causes

    def _cron_due(self, session: Session, m: ModelRetrain) -> datetime | None:
        """The latest fire time of the schedule not after now, if after the last cron decision."""
        from apscheduler.triggers.cron import CronTrigger

        assert m.cron is not None
        trigger = CronTrigger.from_crontab(m.cron, timezone="UTC")
        now = self.clock()
        last = DecisionRepository(session).last_of_kind(m.model, "cron")
        start = now - _CRON_LOOKBACK
        if last is not None:
            start = max(start, datetime.fromisoformat(last.cause_key) + timedelta(seconds=1))
        due: datetime | None = None
        fire: datetime | None = trigger.get_next_fire_time(None, start)
        while fire is not None and fire <= now:
            due = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        return due
