"""The late-label join: labels later than the horizon, joined from the archive in batch.

A scheduled job of the leader (``late-labels``, every ``late_labels.interval``).
For each model whose labels are joined and archived, and each labels
partition the consumer has committed, it reads the label archive from the
partition's cursor, at most ``late_labels.max_rows`` offsets at a time, up to
what both SQL (the consumer's committed offset) and the archive hold, looks up
those labels' predictions in the prediction archive, and joins the pairs more
than the horizon apart (:mod:`consumers.late`).

One batch of one partition is one SQL transaction: the cursor's
compare-and-set, the pairs added to the performance aggregates, and a new
revision of every stored report of a window they changed. A crash anywhere
before the commit leaves the cursor where it was, and the next run reads the
same labels again; a second replica running the job concurrently loses the
compare-and-set, so nothing is counted twice. The transaction also takes the
partition's advisory lock that the consumer's flush takes, so the two never
interleave their updates of one aggregate row.

A batch stops before a label it cannot decide yet: one whose on-time
predictions may still arrive, or whose prediction the streaming join still
holds (not yet counted ``unlabeled``). A run ends at ``late_labels.deadline``.

A batch that meets a stored aggregate or report it cannot read (a
:class:`~drift.errors.DriftError`) is held: nothing of it is committed, its
partition's cursor stays, it is read again at every run, and the other
partitions and models go on (:class:`~service.monitoring.unjudged.Unjudged`
names it once and counts it, as ``late_labels``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from consumers.late import (
    LateJoinSpec,
    LateOutcome,
    LatePlan,
    candidates,
    decidable,
    first_pending,
    resolve_late,
)
from db.archive import ArchiveSettings, ArchiveWriter, Kind
from db.archive.late import earlier_labels, read_labels, read_predictions
from db.join import JoinKey, JoinStateRepository, PerformanceAggregateRepository
from db.late_labels import LateCursorRepository
from db.performance_reports import PerformanceReportRepository
from db.repositories import OffsetRepository
from db.session import transaction
from drift.errors import DriftError
from retrain.isolation import step_each
from service.monitoring.performance import PerformanceJudging, judge_window, revision_alerts
from service.monitoring.unjudged import Unjudged

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LateSettings:
    predictions_topic: str
    labels_topic: str
    consumer_group: str
    max_rows: int = 100_000
    deadline: float = 60.0


@dataclass(frozen=True, slots=True)
class LateModel:
    join: LateJoinSpec
    judging: PerformanceJudging


@dataclass(frozen=True, slots=True)
class _Range:
    """One batch: labels partition ``partition`` at offsets [start, end)."""

    model: str
    partition: int
    expected: int | None
    start: int
    end: int
    final_before: float


def _never(_step: str) -> None:
    pass


def _uncounted(_model: str, _outcome: LateOutcome, _n: int) -> None:
    pass


class LateLabelJoin:
    """``on_step(name)`` is called at ``read`` (the archive read, nothing written),
    ``written`` (the batch's SQL written, not committed) and ``committed``: the
    points a crash test stops the process at. ``count(model, outcome, n)`` sees
    each committed batch's outcomes; ``on_held(model)`` each batch held (once per
    batch and process)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        archive: ArchiveSettings,
        models: Mapping[str, LateModel],
        settings: LateSettings,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
        on_step: Callable[[str], None] = _never,
        count: Callable[[str, LateOutcome, int], None] = _uncounted,
        on_held: Callable[[str], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._archive = archive
        self._writer = ArchiveWriter(archive, settings.consumer_group)
        self._models = models
        self._settings = settings
        self._clock = clock
        self._timer = timer
        self._on_step = on_step
        self._count = count
        self.held = Unjudged("late_labels", on_held)

    def tick(self) -> Counter[LateOutcome]:
        """Join what the archive holds, batch by batch, until caught up or past the
        deadline; returns the outcomes committed.

        Each model gets an equal share of what is left of the deadline when its turn
        comes (a model caught up early leaves its share to the next), and a model whose
        tables or rows fail holds back no other: the first failure is raised after every
        model had its turn (the others are logged).
        """
        done: Counter[LateOutcome] = Counter()
        stop = self._timer() + self._settings.deadline
        models = sorted(self._models)

        def join(model: str) -> None:
            now, left = self._timer(), len(models) - models.index(model)
            self._join_model(model, now + (stop - now) / left, done)

        _, first = step_each(models, join, "late-label join of model")
        if first is not None:
            raise first
        return done

    def _join_model(self, model: str, stop: float, done: Counter[LateOutcome]) -> None:
        while self._timer() < stop:
            moved = False
            for r in self._ranges(model):
                if self._timer() >= stop:
                    break
                try:
                    counts = self._batch(r)
                except DriftError as exc:
                    self.held.hold(r.model, r.partition, r.start, exc)
                    continue
                if counts is not None:
                    moved = True
                    done.update(counts)
            if not moved:
                break

    def _ranges(self, model: str) -> list[_Range]:
        s = self._settings
        late = self._models[model].join
        with self._sessions() as session:
            offsets = OffsetRepository(session, s.consumer_group)
            labels = {w.partition for w in offsets.watermarks(s.labels_topic)}
            committed = offsets.load(s.labels_topic, labels)
            predictions = offsets.load(s.predictions_topic, labels)
            repo = LateCursorRepository(session, s.consumer_group)
            cursors, starts = repo.cursors(model), repo.starts(s.labels_topic)
        archived = self._writer.versions(model, Kind.LABELS, s.labels_topic, sorted(labels))
        out = []
        for p in sorted(labels):
            start = cursors.get(p, starts.get(p, 0))
            end = min(committed[p].next_offset, archived.get(p, 0), start + s.max_rows)
            watermark = predictions[p].watermark if p in predictions else None
            if end > start and watermark is not None:
                final = watermark - late.allowed_lateness
                out.append(_Range(model, p, cursors.get(p), start, end, final))
        return out

    def _batch(self, r: _Range) -> Counter[LateOutcome] | None:
        """Read, decide and commit one range; its outcomes, None when the cursor held."""
        late = self._models[r.model].join
        labels = read_labels(self._archive, r.model, r.partition, r.start, r.end)
        n = decidable(labels, late, r.final_before)
        labels, end = labels[:n], r.end if n == len(labels) else labels[n].offset
        predictions = read_predictions(
            self._archive,
            r.model,
            r.partition,
            [label.event_id for label in labels],
            min((label.event_time for label in labels), default=0.0) - late.max_delay,
            # Up to a horizon after the labels: pairs the streaming join took are found
            # too, and counted as its (in_horizon), not as orphans.
            max((label.event_time for label in labels), default=0.0) + late.horizon,
        )
        wanted = candidates(labels, predictions, late)
        earlier = earlier_labels(
            self._archive,
            r.model,
            r.partition,
            wanted,
            r.start,
            min((predictions[e].event_time for e in wanted), default=0.0) - late.horizon,
            max((label.event_time for label in labels), default=0.0),
        )
        self._on_step("read")
        now = datetime.fromtimestamp(self._clock(), UTC)
        with transaction(self._sessions) as session:
            OffsetRepository(session, self._settings.consumer_group).lock_partitions([r.partition])
            keys = [JoinKey(r.partition, r.model, e) for e in wanted]
            pending = {k.event_id for k in JoinStateRepository(session).predictions(keys)}
            n = first_pending(labels, pending)
            if n < len(labels):  # the streaming join has not swept it: wait for that
                labels, end = labels[:n], labels[n].offset
            if end == r.start:
                return None
            plan = resolve_late(r.partition, labels, predictions, late, earlier)
            self._write(session, r, end, plan, now)
            self._on_step("written")
        self._on_step("committed")
        for outcome, count in plan.counts.items():
            self._count(r.model, outcome, count)
        _log(r, end, plan)
        return plan.counts

    def _write(self, session: Session, r: _Range, end: int, plan: LatePlan, now: datetime) -> None:
        s = self._settings
        cursors = LateCursorRepository(session, s.consumer_group)
        cursors.advance(r.model, r.partition, r.expected, end, now)
        aggregates = PerformanceAggregateRepository(session)
        for key, delta in plan.deltas.items():
            aggregates.add(key, delta, now)
        session.flush()
        judging = self._models[r.model].judging
        reports = PerformanceReportRepository(session)
        for version, start in sorted(plan.windows()):
            when = datetime.fromtimestamp(start, UTC)
            verdict = judge_window(session, r.model, judging, version, when)
            revised = None if verdict is None else reports.revise(verdict, now)
            if verdict is not None and revised is not None:
                revision_alerts(session, verdict, *revised, now)


def _log(r: _Range, end: int, plan: LatePlan) -> None:
    if plan.counts[LateOutcome.JOINED]:
        log.info(
            "late labels of %s[%d], offsets %d-%d: %s; %d windows revised",
            r.model,
            r.partition,
            r.start,
            end,
            ", ".join(f"{n} {o}" for o, n in sorted(plan.counts.items())),
            len(plan.windows()),
        )
