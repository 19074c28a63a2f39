"""The late-label join over a real Delta archive and SQL, fed by the real ingestion loop.

The loop (over a fake two-topic consumer) archives and joins within the
horizon; the job then joins what came later from the archive. Each case checks
the window's counts and sketch, the report's revision, and that a run redone
after a crash at any step counts nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from consumers.archive import ArchiveIntake
from consumers.labels import LabelSpec
from consumers.late import LateJoinSpec, LateOutcome
from db.archive import ARRIVED_LATE, ArchiveSettings, ArchiveWriter, Kind, read_table
from db.archive.errors import ArchiveError
from db.models import LateLabelStart, PerformanceAggregate, PerformanceReportRow
from db.outbox import AlertEventRow, event_payload
from db.performance_reports import PerformanceReportRepository
from db.session import make_engine, make_session_factory, transaction
from drift.performance import Task
from drift.schema import PredictionKind
from service.alerts.conditions import PERFORMANCE_DEGRADATION, condition
from service.monitoring.late_labels import LateLabelJoin, LateModel, LateSettings
from service.monitoring.performance import PerformanceJudging, ReferenceValue, judge_window
from tests.harness.ingest import GROUP, LABELS, SPEC, TOPIC, TTL, FakeClock, JoinRig, T, label, pred

WINDOW = datetime.fromtimestamp(T, UTC)
NOW = datetime.fromtimestamp(T + 1000, UTC)
PLAIN = PerformanceJudging(SPEC, 60, 0)  # no reference performance: no verdicts


class Crash(Exception):
    pass


def crash_at(step: str) -> Callable[[str], None]:
    """A job step hook that raises at ``step``."""

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    return crash


@pytest.fixture
def sql(db_url: str) -> Any:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def rig(sql: sessionmaker[Session], tmp_path: Path) -> tuple[JoinRig, ArchiveSettings]:
    settings = ArchiveSettings(uri=str(tmp_path / "archive"))
    r = JoinRig(sql, FakeClock(T + 100.0))
    r.loop.archive = ArchiveIntake(ArchiveWriter(settings, GROUP), ["fraud"])
    return r, settings


def job(sql: sessionmaker[Session], archive: ArchiveSettings, **kw: Any) -> LateLabelJoin:
    judging = kw.pop("judging", PLAIN)
    models = {"fraud": LateModel(LateJoinSpec(SPEC, 60, 0.0, 7 * 86400.0), judging)}
    return LateLabelJoin(
        sql, archive, models, LateSettings(TOPIC, LABELS, GROUP, max_rows=kw.pop("rows", 1000)),
        clock=lambda: T + 5000.0, **kw,
    )  # fmt: skip


def report(sql: sessionmaker[Session], judging: PerformanceJudging = PLAIN) -> PerformanceReportRow:
    with transaction(sql) as s:
        verdict = judge_window(s, "fraud", judging, "v1", WINDOW)
        assert verdict is not None
        PerformanceReportRepository(s).add(verdict, WINDOW)
    with sql() as s:
        (row,) = PerformanceReportRepository(s).rows("fraud")
        s.expunge(row)
    return row


def late_stream(r: JoinRig) -> None:
    """a, b in window T; b labelled in the horizon, a's label 700 s late; c keeps the
    predictions' watermark past what a's label could still meet."""
    r.step(preds=[pred(T + 5, "a", 0.9), pred(T + 25, "b", 0.75), pred(T + 400, "c")])
    r.step(labels=[label(T + 40, "b", 1)])
    r.step(labels=[label(T + 5 + TTL + 100, "a", 1)])


def test_a_label_past_the_horizon_is_late_in_the_stream_and_joined_once_from_the_archive(
    sql: Any, tmp_path: Path
) -> None:
    r, archive = rig(sql, tmp_path)
    late_stream(r)
    assert r.outcomes() == {"joined": 1, "late": 1}
    assert r.window()[:3] == (2, 1, 1)  # a swept unlabelled at the horizon
    assert report(sql).revision == 0
    counted: list[tuple[str, LateOutcome, int]] = []
    join = job(sql, archive, count=lambda *c: counted.append(c))
    assert join.tick() == {LateOutcome.JOINED: 1, LateOutcome.IN_HORIZON: 1}
    predicted, labeled, unlabeled, sketch = r.window()
    assert (predicted, labeled, unlabeled, sketch.count, sketch.correct) == (2, 2, 0, 2, 2)
    row = report(sql)
    assert (row.revision, row.labeled, row.unlabeled, row.label_coverage) == (1, 2, 0, 1.0)
    assert row.revised_at is not None
    assert counted == [("fraud", LateOutcome.IN_HORIZON, 1), ("fraud", LateOutcome.JOINED, 1)]
    assert join.tick() == {}  # the cursor has passed them: nothing twice
    assert r.window()[:3] == (2, 2, 0)
    assert report(sql).revision == 1


@pytest.mark.parametrize("step", ["read", "written"])
def test_a_crash_before_the_commit_redoes_the_batch_without_counting_twice(
    sql: Any, tmp_path: Path, step: str
) -> None:
    r, archive = rig(sql, tmp_path)
    late_stream(r)

    with pytest.raises(Crash):
        job(sql, archive, on_step=crash_at(step)).tick()
    assert r.window()[:3] == (2, 1, 1)  # nothing of the batch is in SQL
    assert job(sql, archive).tick()[LateOutcome.JOINED] == 1
    assert r.window()[:3] == (2, 2, 0)


def test_two_runs_reading_the_same_labels_count_them_once(sql: Any, tmp_path: Path) -> None:
    r, archive = rig(sql, tmp_path)
    late_stream(r)
    first, second = job(sql, archive), job(sql, archive)
    ranges = first._ranges("fraud")
    assert first._batch(ranges[0]) is not None
    with pytest.raises(Exception, match="moved under this run"):
        second._batch(ranges[0])  # read before the first committed: the CAS refuses it
    assert r.window()[:3] == (2, 2, 0)


def test_a_label_waits_while_its_prediction_is_still_pending(sql: Any, tmp_path: Path) -> None:
    r, archive = rig(sql, tmp_path)
    # The label first, parked; its prediction comes later, 700 s before it: late. The labels
    # do not move in that flush, so the prediction stays pending (not yet unlabelled).
    r.step(labels=[label(T + 5 + TTL + 100, "a", 1)])
    r.step(preds=[pred(T + 5, "a", 0.9), pred(T + 400, "c")])
    assert r.outcomes() == {"early": 1, "late": 1}
    assert r.pending() == (2, 0, 0)
    assert job(sql, archive).tick() == {}
    r.step(labels=[label(T + 2000, "other", 0)])  # the labels move on: a is swept
    assert r.window()[:3] == (1, 0, 1)
    assert job(sql, archive).tick()[LateOutcome.JOINED] == 1
    assert r.window()[:3] == (1, 1, 0)


def test_a_late_label_of_a_prediction_no_window_counted_joins_nothing(
    sql: Any, tmp_path: Path
) -> None:
    r, archive = rig(sql, tmp_path)
    # d arrives after c moved the watermark past its window's close: archived, not counted.
    r.step(preds=[pred(T + 5, "a", 0.9), pred(T + 400, "c")])
    r.step(preds=[pred(T + 10, "d", 0.9)])
    r.step(labels=[label(T + 5 + TTL + 100, "a", 1), label(T + 10 + TTL + 100, "d", 1)])
    r.step(labels=[label(T + 2000, "other", 0)])  # the labels move on: a is swept
    assert r.window()[:3] == (1, 0, 1)
    flags = read_table(archive, "fraud", Kind.PREDICTIONS, columns=["event_id", ARRIVED_LATE])
    assert flags is not None
    assert dict(zip(*flags.to_pydict().values(), strict=True)) == {
        "a": False, "c": False, "d": True
    }  # fmt: skip
    done = job(sql, archive).tick()
    assert (done[LateOutcome.JOINED], done[LateOutcome.UNCOUNTED]) == (1, 1)
    # Only a moved: d's label would have made the window's labeled exceed its predicted.
    predicted, labeled, unlabeled, sketch = r.window()
    assert (predicted, labeled, unlabeled, sketch.count) == (1, 1, 0, 1)


def test_rows_per_batch_bound_each_transaction(sql: Any, tmp_path: Path) -> None:
    r, archive = rig(sql, tmp_path)
    late_stream(r)
    assert job(sql, archive, rows=1).tick() == {
        LateOutcome.JOINED: 1,
        LateOutcome.IN_HORIZON: 1,
    }
    assert r.window()[:3] == (2, 2, 0)


def test_labels_consumed_before_the_late_join_existed_are_not_read(
    sql: Any, tmp_path: Path
) -> None:
    r, archive = rig(sql, tmp_path)
    late_stream(r)
    with transaction(sql) as s:  # as migration 0015 records an older deployment's offsets
        s.add(LateLabelStart(consumer_group=GROUP, topic=LABELS, partition=0, next_offset=2))
    assert job(sql, archive).tick() == {}
    assert r.window()[:3] == (2, 1, 1)


def test_a_second_label_after_the_horizon_is_a_duplicate_in_a_later_batch(
    sql: Any, tmp_path: Path
) -> None:
    r, archive = rig(sql, tmp_path)
    late_stream(r)  # b labelled within the horizon, a late
    r.step(labels=[label(T + 25 + TTL + 200, "b", 0), label(T + 5 + TTL + 300, "a", 0)])
    assert r.outcomes() == {"joined": 1, "late": 1, "early": 2}  # a and b are swept by now
    # One label offset per batch: each second label is read in a batch after its first.
    assert job(sql, archive, rows=1).tick() == {
        LateOutcome.JOINED: 1,
        LateOutcome.IN_HORIZON: 1,
        LateOutcome.DUPLICATE: 2,
    }
    predicted, labeled, unlabeled, sketch = r.window()
    assert (predicted, labeled, unlabeled, sketch.count, sketch.correct) == (2, 2, 0, 2, 2)


# A reference accuracy the window's pairs fall short of once the late label is in;
# two labelled pairs are enough for a verdict, one is not.
STRICT = PerformanceJudging(SPEC, 60, 0, ReferenceValue(accuracy=0.99), min_labeled=2)


def wrong_late_stream(r: JoinRig) -> None:
    """As late_stream, but a's late label says the model was wrong about it."""
    r.step(preds=[pred(T + 5, "a", 0.9), pred(T + 25, "b", 0.75), pred(T + 400, "c")])
    r.step(labels=[label(T + 40, "b", 1)])
    r.step(labels=[label(T + 5 + TTL + 100, "a", 0)])


def degradation_events(sql: sessionmaker[Session]) -> list[tuple[str, dict[str, Any]]]:
    with sql() as s:
        rows = s.scalars(
            select(AlertEventRow)
            .where(AlertEventRow.kind == PERFORMANCE_DEGRADATION)
            .order_by(AlertEventRow.id)
        ).all()
        return [(row.key, event_payload(row)) for row in rows]


def test_a_revision_that_shows_a_degradation_fires_its_alert_once(sql: Any, tmp_path: Path) -> None:
    r, archive = rig(sql, tmp_path)
    wrong_late_stream(r)
    first = report(sql, STRICT)  # one labelled pair: no verdict, no alert
    assert first.degraded is None and degradation_events(sql) == []
    assert job(sql, archive, judging=STRICT).tick()[LateOutcome.JOINED] == 1
    row = report(sql)
    assert (row.revision, row.labeled, row.degraded) == (1, 2, True)
    ((key, payload),) = degradation_events(sql)
    assert key == f"performance_degradation-report-{row.id}-revision-1-trigger"
    assert payload["action"] == "trigger" and payload["revision"] == 1
    assert (payload["scope"], payload["window_start"]) == ("v1", T)
    assert job(sql, archive, judging=STRICT).tick() == {}
    assert len(degradation_events(sql)) == 1  # nothing twice


def test_an_older_window_revised_leaves_a_newer_windows_verdict_standing(
    sql: Any, tmp_path: Path
) -> None:
    r, archive = rig(sql, tmp_path)
    wrong_late_stream(r)
    report(sql, STRICT)
    # A newer window of the version was judged degraded, then clean: the alert resolved.
    with transaction(sql) as s:
        for firing, start in ((True, T + 600), (False, T + 660)):
            details = {"model_version": "v1", "window_start": start}
            condition(s, "fraud", PERFORMANCE_DEGRADATION, firing, f"w{start}", "m", NOW, details)
    assert job(sql, archive, judging=STRICT).tick()[LateOutcome.JOINED] == 1
    assert report(sql).degraded is True  # the old window's report is revised ...
    actions = [payload["action"] for _, payload in degradation_events(sql)]
    assert actions == ["trigger", "resolve"]  # ... but the alert follows the newest window


@pytest.mark.parametrize("step", ["read", "written"])
def test_a_crash_before_the_commit_queues_the_revisions_alert_once(
    sql: Any, tmp_path: Path, step: str
) -> None:
    r, archive = rig(sql, tmp_path)
    wrong_late_stream(r)
    report(sql, STRICT)

    with pytest.raises(Crash):
        job(sql, archive, judging=STRICT, on_step=crash_at(step)).tick()
    assert degradation_events(sql) == []  # the alert commits with its revision, or not at all
    assert job(sql, archive, judging=STRICT).tick()[LateOutcome.JOINED] == 1
    assert [p["action"] for _, p in degradation_events(sql)] == ["trigger"]


def test_a_batch_meeting_an_unreadable_window_row_is_held_while_other_partitions_go_on(
    sql: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = ArchiveSettings(uri=str(tmp_path / "archive"))
    r = JoinRig(sql, FakeClock(T + 100.0), partitions=2)
    r.loop.archive = ArchiveIntake(ArchiveWriter(archive, GROUP), ["fraud"])
    # late_stream's events in partition 0 (window T), a minute later in partition 1.
    for p, (a, b, c) in enumerate(["abc", "def"]):
        t = T + 60 * p
        r.step(preds=[pred(t + 5, a, 0.9), pred(t + 25, b, 0.75), pred(t + 400, c)], partition=p)
        r.step(labels=[label(t + 40, b, 1)], partition=p)
        r.step(labels=[label(t + 5 + TTL + 100, a, 1)], partition=p)
    row = (PerformanceAggregate.partition == 0) & (PerformanceAggregate.window_start == WINDOW)
    with transaction(sql) as s:
        stored = s.scalar(select(PerformanceAggregate.sketch).where(row))
        s.execute(update(PerformanceAggregate).where(row).values(sketch=b"damaged"))
    caplog.set_level(logging.ERROR, logger="service.monitoring.unjudged")
    held: list[str] = []
    join = job(sql, archive, on_held=held.append)

    # Partition 0's batch would merge into the damaged row: held; partition 1's committed.
    assert join.tick() == {LateOutcome.JOINED: 1, LateOutcome.IN_HORIZON: 1}
    assert join.tick() == {}  # read again, held again: named and counted once
    assert held == ["fraud"]
    (line,) = [x.getMessage() for x in caplog.records if x.name == "service.monitoring.unjudged"]
    assert "late labels of fraud[0] from offset 0 are held" in line
    assert f"performance aggregate fraud/v1 at {WINDOW.isoformat()}, partition 0" in line

    with transaction(sql) as s:  # repaired: the held batch goes through, once
        s.execute(update(PerformanceAggregate).where(row).values(sketch=stored))
    assert join.tick() == {LateOutcome.JOINED: 1, LateOutcome.IN_HORIZON: 1}
    assert r.window()[:3] == r.window(T + 60)[:3] == (2, 2, 0)
    assert join.tick() == {}


def test_a_model_whose_archive_fails_holds_back_no_other(sql: Any, tmp_path: Path) -> None:
    # "broken" comes first in the job's order, and its label table's log does not parse:
    # fraud's late label is joined all the same, then the failure is raised for the
    # scheduler to report.
    r, archive = rig(sql, tmp_path)
    late_stream(r)
    log_dir = Path(archive.table_uri("broken", Kind.LABELS)) / "_delta_log"
    log_dir.mkdir(parents=True)
    (log_dir / "00000000000000000000.json").write_text("not a delta log\n")
    broken = LabelSpec("broken", PredictionKind.NUMERICAL, Task.CLASSIFICATION, TTL)
    models = {
        "broken": LateModel(
            LateJoinSpec(broken, 60, 0.0, 7 * 86400.0), PerformanceJudging(broken, 60, 0)
        ),
        "fraud": LateModel(LateJoinSpec(SPEC, 60, 0.0, 7 * 86400.0), PLAIN),
    }
    join = LateLabelJoin(
        sql, archive, models, LateSettings(TOPIC, LABELS, GROUP), clock=lambda: T + 5000.0
    )
    with pytest.raises(ArchiveError):
        join.tick()
    assert r.window()[:3] == (2, 2, 0)  # fraud's late label joined
