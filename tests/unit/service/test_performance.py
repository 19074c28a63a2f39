"""Performance reports: written once a window's labels are final, against the reference."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from consumers.checkpoint import CheckpointStore
from consumers.join import JoinBatch
from consumers.labels import LabelSpec
from db.join import LabelRecord, PredictionRecord
from db.models import PerformanceAggregate, PerformanceReportRow
from db.performance_reports import PerformanceReportRepository, PerformanceVerdict
from db.repositories import OffsetAdvance
from db.session import make_engine, make_session_factory, transaction
from drift.performance import Task
from drift.schema import PredictionKind
from service.monitoring.performance import (
    NoPerformanceObserver,
    PerformanceEvaluator,
    PerformanceJudging,
    PerformanceSettings,
    ReferenceValue,
)

T = 1_800_000_000
TTL = 600.0
SPEC = LabelSpec("fraud", PredictionKind.CATEGORICAL, Task.CLASSIFICATION, TTL)
SETTINGS = PerformanceSettings("predictions", "labels", "g1", idle_partition_timeout=1e9)


@pytest.fixture
def sql(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def fill(sql: sessionmaker[Session], correct: int, wrong: int, unlabeled: int) -> None:
    """One window at T: predictions, labels for some, offsets with the given watermarks."""
    n = correct + wrong + unlabeled
    preds = [
        PredictionRecord(0, "fraud", f"e{i}", "v1", T, T + 1.0, "1", None, None, T + 1.0 + TTL)
        for i in range(n)
    ]
    labels = [
        LabelRecord(0, "fraud", f"e{i}", "1" if i < correct else "0", T + 5.0, T + 5.0 + TTL)
        for i in range(correct + wrong)
    ]
    store = CheckpointStore(sql, "g1", lambda: T + 10.0)
    batch = JoinBatch(preds, labels, specs={"fraud": SPEC}, windows={"fraud": 60})
    store.commit(
        [
            OffsetAdvance("predictions", 0, None, n, T + 1.0),
            OffsetAdvance("labels", 0, None, len(labels), T + 5.0),
        ],
        {},
        batch,
    )


def advance(sql: sessionmaker[Session], predictions: float, labels: float) -> None:
    """Move both watermarks (and sweep, as a flush does)."""
    store = CheckpointStore(sql, "g1", lambda: T + 10.0)
    with sql() as s:
        from db.repositories import OffsetRepository

        held = {
            t: OffsetRepository(s, "g1").load(t, [0])[0].next_offset
            for t in ("predictions", "labels")
        }
    batch = JoinBatch(
        label_watermarks={0: labels},
        prediction_watermarks={0: predictions},
        specs={"fraud": SPEC},
        windows={"fraud": 60},
    )
    store.commit(
        [
            OffsetAdvance(
                "predictions", 0, held["predictions"], held["predictions"] + 1, predictions
            ),
            OffsetAdvance("labels", 0, held["labels"], held["labels"] + 1, labels),
        ],
        {},
        batch,
    )


def evaluator(sql: Any, reference: ReferenceValue | None) -> PerformanceEvaluator:
    judging = PerformanceJudging(SPEC, 60, 10, reference, min_labeled=100)
    return PerformanceEvaluator(sql, {"fraud": judging}, SETTINGS, clock=lambda: T + 10.0)


def test_a_window_is_reported_once_its_labels_are_final(sql: Any) -> None:
    fill(sql, correct=150, wrong=50, unlabeled=20)
    ev = evaluator(sql, ReferenceValue(accuracy=0.9))
    advance(sql, predictions=T + 200, labels=T + 300)  # labels may still come (TTL)
    assert ev.tick() == []
    advance(sql, predictions=T + 700, labels=T + 700)  # past window end + TTL
    [report_id] = ev.tick()
    assert ev.tick() == []  # once per window
    with sql() as s:
        [row] = PerformanceReportRepository(s).rows("fraud")
    assert row.id == report_id
    assert (row.predicted, row.labeled, row.unlabeled) == (220, 200, 20)
    assert row.label_coverage == pytest.approx(200 / 220)
    assert row.accuracy == pytest.approx(0.75)
    assert row.degradation_metric == "accuracy"
    assert row.degraded is True
    assert row.verdict.startswith("degraded: accuracy 0.75 vs reference 0.9")


class Verdicts:
    """A :class:`PerformanceObserver` that keeps what it was told."""

    def __init__(self) -> None:
        self.windows: list[tuple[str, str, int, int]] = []
        self.unjudged: list[str] = []

    def performance_report(self, verdict: PerformanceVerdict) -> None:
        self.windows.append(
            (verdict.model, verdict.model_version, verdict.window_start, verdict.labeled)
        )

    def newest(self, model: str, version: str, coverage: float | None, values: Any) -> None:
        pass  # only new reports are counted here

    def performance_unjudged(self, model: str) -> None:
        self.unjudged.append(model)


def test_the_observer_hears_of_each_stored_report_once(sql: Any) -> None:
    fill(sql, correct=150, wrong=50, unlabeled=20)
    advance(sql, predictions=T + 700, labels=T + 700)
    judging = PerformanceJudging(SPEC, 60, 10, None, min_labeled=100)
    heard = Verdicts()
    ev = PerformanceEvaluator(sql, {"fraud": judging}, SETTINGS, heard, clock=lambda: T + 10.0)
    [report_id] = ev.tick()
    assert ev.tick() == []
    with sql() as s:
        [row] = PerformanceReportRepository(s).rows("fraud")
    assert row.id == report_id
    start = int(row.window_start.timestamp())
    assert heard.windows == [("fraud", row.model_version, start, row.labeled)] and start == T
    assert isinstance(evaluator(sql, None)._observer, NoPerformanceObserver)


def test_a_window_whose_aggregate_cannot_be_read_is_skipped_once_and_retried(
    sql: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fill(sql, correct=150, wrong=50, unlabeled=20)
    advance(sql, predictions=T + 700, labels=T + 700)
    with transaction(sql) as s:
        (sketch,) = s.execute(select(PerformanceAggregate.sketch)).one()
        s.execute(update(PerformanceAggregate).values(sketch=b"not a sketch"))
    judging = PerformanceJudging(SPEC, 60, 10, None, min_labeled=100)
    heard = Verdicts()
    ev = PerformanceEvaluator(sql, {"fraud": judging}, SETTINGS, heard, clock=lambda: T + 10.0)
    with caplog.at_level(logging.ERROR, logger="service.monitoring.unjudged"):
        assert ev.tick() == []
        assert ev.tick() == []
    assert heard.unjudged == ["fraud"] and heard.windows == []
    [line] = [r.getMessage() for r in caplog.records if r.name.startswith("service.monitoring")]
    assert line.startswith("performance window fraud/v1 at ")
    # Readable again (a repair, or the release that wrote it), the window is judged.
    with transaction(sql) as s:
        s.execute(update(PerformanceAggregate).values(sketch=sketch))
    assert len(ev.tick()) == 1 and len(heard.windows) == 1


def test_a_stored_report_that_cannot_be_read_leaves_its_gauges_empty_not_the_tick_stuck(
    sql: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fill(sql, correct=150, wrong=50, unlabeled=20)
    advance(sql, predictions=T + 700, labels=T + 700)
    assert len(evaluator(sql, None).tick()) == 1
    with transaction(sql) as s:
        s.execute(update(PerformanceReportRow).values(sketch=b"not a sketch"))
    restarted = evaluator(sql, None)
    with caplog.at_level(logging.ERROR, logger="service.monitoring.performance"):
        assert restarted.tick() == []  # restored what it could; nothing new to judge
    [line] = [r.getMessage() for r in caplog.records if r.name.startswith("service.monitoring")]
    assert line.startswith(
        "performance report 1 cannot be read for the gauges: cannot decode performance sketch: "
    )


def test_too_few_labels_or_no_reference_give_no_verdict(sql: Any) -> None:
    fill(sql, correct=40, wrong=10, unlabeled=0)
    advance(sql, predictions=T + 700, labels=T + 700)
    evaluator(sql, ReferenceValue(accuracy=0.9)).tick()
    with sql() as s:
        [row] = PerformanceReportRepository(s).rows("fraud")
    assert row.degraded is None
    assert row.verdict.startswith("insufficient labels: 50 labelled events")
    assert row.accuracy == pytest.approx(0.8)


def alarm(sql: sessionmaker[Session], detector: str, prediction_time: float) -> None:
    from db.detectors import Alarm, AlarmRepository

    with sql.begin() as s:
        AlarmRepository(s).add(
            [Alarm("fraud", "v1", 0, detector, prediction_time, prediction_time + 9, 1, 0.1, 0.2)],
            datetime.fromtimestamp(T, UTC),
        )


def report(sql: sessionmaker[Session], reference: ReferenceValue | None, rule: bool) -> Any:
    judging = PerformanceJudging(SPEC, 60, 10, reference, min_labeled=100, alarm_rule=rule)
    PerformanceEvaluator(sql, {"fraud": judging}, SETTINGS, clock=lambda: T + 10.0).tick()
    with sql() as s:
        [row] = PerformanceReportRepository(s).rows("fraud")
    return row


@pytest.mark.parametrize(
    ("correct", "alarms", "rule", "expected"),
    [
        (150, [], True, False),  # degraded, but no alarm: the rule decides
        (190, [], True, False),  # neither
        (190, ["adwin"], True, False),  # only the default rule's alarms count
        (190, ["rule", "adwin", "rule"], True, True),
        (190, [], False, None),  # without the rule, no alarm is no evidence
    ],
)
def test_the_concept_drift_verdict_is_an_alarm_of_the_rule_in_the_window(
    sql: Any, correct: int, alarms: list[str], rule: bool, expected: bool | None
) -> None:
    fill(sql, correct=correct, wrong=200 - correct, unlabeled=0)
    for detector in alarms:
        alarm(sql, detector, T + 1.5)
    alarm(sql, "rule", T + 60.0)  # the next window's
    alarm(sql, "rule", T - 0.5)  # the previous window's
    advance(sql, predictions=T + 700, labels=T + 700)
    row = report(sql, ReferenceValue(accuracy=0.9), rule)
    assert row.concept_drift is expected
    assert row.alarms == len(alarms)
    assert row.alarm_detectors == ",".join(sorted(set(alarms)))
    if alarms:
        assert row.verdict.endswith(
            "; detector alarms: " + ", ".join(f"{d} {alarms.count(d)}" for d in sorted(set(alarms)))
        )


def test_without_a_reference_only_an_alarm_decides(sql: Any) -> None:
    fill(sql, correct=150, wrong=50, unlabeled=0)
    alarm(sql, "rule", T + 59.999)
    advance(sql, predictions=T + 700, labels=T + 700)
    row = report(sql, None, True)
    assert (row.degraded, row.concept_drift, row.alarms) == (None, True, 1)


def test_the_performance_command_shows_alarms_and_the_verdict(
    sql: Any, db_url: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import yaml

    from service.cli import main

    fill(sql, correct=190, wrong=10, unlabeled=0)
    alarm(sql, "rule", T + 2.0)
    alarm(sql, "ddm", T + 3.0)
    advance(sql, predictions=T + 700, labels=T + 700)
    report(sql, ReferenceValue(accuracy=0.9), True)
    config = tmp_path / "driftwatch.yaml"
    model = {"window": "1m", "features": {"amount": {"type": "numerical"}}}
    raw = {"kafka": {"bootstrap_servers": "k:9092"}, "database": {"url": db_url}}
    config.write_text(yaml.safe_dump({**raw, "models": {"fraud": model}}), encoding="utf-8")
    assert main(["performance", "--config", str(config), "--json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert (shown["degraded"], shown["concept_drift"]) == (False, True)
    assert (shown["alarms"], shown["alarm_detectors"]) == (2, ["ddm", "rule"])
    assert main(["performance", "--config", str(config)]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[-3:] == ["degraded", "concept", "alarms"]
    assert line.split()[-4:] == ["-", "DRIFT", "2", "(ddm,rule)"]


def test_once_every_partition_is_idle_every_window_is_final(sql: Any) -> None:
    fill(sql, correct=150, wrong=50, unlabeled=0)  # watermarks far from closing the window
    judging = PerformanceJudging(SPEC, 60, 10, None, min_labeled=100)
    idle = PerformanceSettings("predictions", "labels", "g1", idle_partition_timeout=30.0)
    busy = PerformanceEvaluator(sql, {"fraud": judging}, idle, clock=lambda: T + 20.0)
    assert busy.tick() == []
    stopped = PerformanceEvaluator(sql, {"fraud": judging}, idle, clock=lambda: T + 100.0)
    assert len(stopped.tick()) == 1


def add_window(sql: sessionmaker[Session], start: int, correct: int, unlabeled: int) -> None:
    """Another window of fraud/v1 at ``start``: ``correct`` labelled pairs, the rest unlabelled."""
    from db.repositories import OffsetRepository

    with sql() as s:
        held = {t: OffsetRepository(s, "g1").load(t, [0])[0].next_offset for t in TOPICS}
    n = correct + unlabeled
    ids = [f"w{start}-{i}" for i in range(n)]
    preds = [
        PredictionRecord(0, "fraud", e, "v1", start, start + 1.0, "1", None, None, start + TTL)
        for e in ids
    ]
    labels = [
        LabelRecord(0, "fraud", e, "1", start + 5.0, start + 5.0 + TTL) for e in ids[:correct]
    ]
    batch = JoinBatch(preds, labels, specs={"fraud": SPEC}, windows={"fraud": 60})
    p, lab = held["predictions"], held["labels"]
    CheckpointStore(sql, "g1", lambda: T + 10.0).commit(
        [
            OffsetAdvance("predictions", 0, p, p + n, start + 1.0),
            OffsetAdvance("labels", 0, lab, lab + max(correct, 1), start + 5.0),
        ],
        {},
        batch,
    )


TOPICS = ("predictions", "labels")


def concept_alerts(sql: sessionmaker[Session]) -> list[str]:
    import json

    from db.outbox import AlertOutbox

    with sql() as s:
        events = AlertOutbox(s).events()
    return [json.loads(e.payload)["action"] for e in events if e.kind == "concept_drift"]


def judge(sql: sessionmaker[Session], metrics: Any = None) -> list[int]:
    judging = PerformanceJudging(SPEC, 60, 10, ReferenceValue(accuracy=0.9), 100, alarm_rule=True)
    ev = PerformanceEvaluator(sql, {"fraud": judging}, SETTINGS, metrics, clock=lambda: T + 10.0)
    return ev.tick()


def test_no_evidence_never_resolves_a_firing_concept_drift_alert(sql: Any) -> None:
    fill(sql, correct=190, wrong=10, unlabeled=0)
    alarm(sql, "rule", T + 1.5)
    add_window(sql, T + 60, correct=0, unlabeled=200)  # a stretch without labels
    add_window(sql, T + 120, correct=50, unlabeled=150)  # some, below min_labeled
    advance(sql, predictions=T + 900, labels=T + 900)
    assert len(judge(sql)) == 3
    with sql() as s:
        rows = PerformanceReportRepository(s).rows("fraud")
    assert [(r.labeled, r.concept_drift) for r in rows] == [(200, True), (0, None), (50, None)]
    assert concept_alerts(sql) == ["trigger"]  # still firing
    add_window(sql, T + 180, correct=150, unlabeled=0)  # evidence, no alarm
    advance(sql, predictions=T + 1000, labels=T + 1000)
    assert len(judge(sql)) == 1
    assert concept_alerts(sql) == ["trigger", "resolve"]


def test_a_gauge_reads_the_same_before_and_after_a_restart(sql: Any) -> None:
    from prometheus_client import CollectorRegistry

    from service.metric_feeds import ReportMetrics
    from service.metrics import Metrics

    def gauges(metrics: Metrics) -> tuple[float | None, float | None]:
        value = metrics.registry.get_sample_value
        version = {"model": "fraud", "model_version": "v1"}
        accuracy = value("driftwatch_model_performance_ratio", {**version, "metric": "accuracy"})
        return accuracy, value("driftwatch_label_coverage_ratio", version)

    def evaluator(metrics: Metrics) -> PerformanceEvaluator:
        judging = PerformanceJudging(SPEC, 60, 10, None, 100)
        observer = ReportMetrics(metrics)
        return PerformanceEvaluator(sql, {"fraud": judging}, SETTINGS, observer, lambda: T + 10.0)

    fill(sql, correct=190, wrong=10, unlabeled=0)
    add_window(sql, T + 60, correct=0, unlabeled=200)  # coverage 0: no accuracy to show
    advance(sql, predictions=T + 900, labels=T + 900)
    running = Metrics(CollectorRegistry())
    first = evaluator(running)
    assert len(first.tick()) == 2
    assert gauges(running) == (None, 0.0)  # absent, not the previous window's 0.95
    restarted = Metrics(CollectorRegistry())
    assert evaluator(restarted).tick() == []
    assert gauges(restarted) == gauges(running)

    add_window(sql, T + 120, correct=150, unlabeled=50)
    advance(sql, predictions=T + 1000, labels=T + 1000)
    assert len(first.tick()) == 1
    assert gauges(running) == (1.0, 0.75)
    restarted = Metrics(CollectorRegistry())
    assert evaluator(restarted).tick() == []
    assert gauges(restarted) == gauges(running)
