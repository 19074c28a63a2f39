"""Streaming detectors on the joined pairs, state in SQL, on both databases.

The pairs are fed to the observer as the join hands them over, inside a
transaction per flush, so every test also checks what SQL holds afterwards;
the expected detectors are the pure ones of ``drift.detectors`` fed the same
losses once, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from consumers.detectors import DetectorObserver, DetectorSpec, new_detector
from consumers.join import JoinedPair
from db.detectors import Alarm, AlarmRepository, DetectorKey, DetectorStateRepository
from db.join import PredictionRecord
from db.models import ConceptDriftAlarmRow
from db.session import make_engine, make_session_factory
from drift.detectors import AlarmRule
from drift.detectors.losses import regression_scale
from drift.performance import Task
from tests.harness.ingest import FakeClock, JoinRig, T, label, pred

ALL = ("rule", "adwin", "ddm", "eddm", "page_hinkley")
CLASSIFIER = DetectorSpec("fraud", Task.CLASSIFICATION)


@pytest.fixture
def sql(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def pair(i: int, error: bool | float, partition: int = 0, version: str = "v1") -> JoinedPair:
    """The i-th joined pair, one second apart in event time; an error or a regression miss."""
    t = T + float(i)
    if isinstance(error, bool):
        predicted, actual = "1", ("0" if error else "1")
        record = PredictionRecord(
            partition, "fraud", f"e{i}", version, T, t, predicted, None, None, t
        )
        return JoinedPair(record, actual, t + 30.0)
    record = PredictionRecord(partition, "fraud", f"e{i}", version, T, t, None, 10.0, None, t)
    return JoinedPair(record, repr(10.0 + error), t + 30.0)


def errors(seed: int, *phases: tuple[int, float]) -> list[bool]:
    """Bernoulli errors: ``n`` events at rate ``p`` for each (n, p) phase."""
    rng = np.random.default_rng(seed)
    return [bool(e) for n, p in phases for e in rng.random(n) < p]


def feed(
    sql: sessionmaker[Session],
    observer: DetectorObserver,
    pairs: Sequence[JoinedPair],
    flush: int = 500,
) -> list[Alarm]:
    """Hand ``pairs`` over as flushes of ``flush`` pairs, one transaction each."""
    alarms: list[Alarm] = []
    for i in range(0, len(pairs), flush):
        by_partition: dict[int, list[JoinedPair]] = {}
        for p in pairs[i : i + flush]:
            by_partition.setdefault(p.prediction.partition, []).append(p)
        with sql.begin() as session:
            alarms += observer.joined(session, by_partition)
    return alarms


def stored_states(sql: sessionmaker[Session], partition: int = 0) -> dict[str, Any]:
    with sql() as s:
        rows = DetectorStateRepository(s).load([("fraud", "v1", partition)])
    return {key.detector: state for key, state in rows.items()}


def stored_alarms(sql: sessionmaker[Session]) -> list[Alarm]:
    with sql() as s:
        rows = AlarmRepository(s).rows("fraud")
    return [
        Alarm(
            r.model,
            r.model_version,
            r.partition,
            r.detector,
            r.prediction_time.timestamp(),
            r.label_time.timestamp(),
            r.labeled,
            r.baseline_rate,
            r.alarm_rate,
        )
        for r in rows
    ]


def pure(names: Sequence[str], losses: Sequence[float]) -> tuple[dict[str, Any], list[Any]]:
    """Each detector's state after ``losses``, and (detector, 1-based index) of each drift."""
    states, drifts = {}, []
    for name in names:
        detector = new_detector(name)
        for i, x in enumerate(losses, 1):
            detector.update(x)
            if detector.drift_detected:
                drifts.append((name, i))
        states[name] = detector.to_state()
    return states, drifts


def test_an_accuracy_drop_raises_one_alarm_of_the_rule(sql: Any) -> None:
    # Accuracy 90 % for 5,000 labelled events, then 80 %.
    errs = errors(1, (5_000, 0.1), (3_000, 0.2))
    alarms = feed(
        sql, DetectorObserver({"fraud": CLASSIFIER}), [pair(i, e) for i, e in enumerate(errs)]
    )
    [alarm] = alarms
    assert stored_alarms(sql) == alarms
    _, [(name, index)] = pure(["rule"], [float(e) for e in errs])
    assert (alarm.detector, alarm.labeled) == (name, index)
    assert 5_000 < alarm.labeled <= 5_600  # ADWIN's worst delay at this change is 600
    assert alarm.prediction_time == T + index - 1
    assert alarm.label_time == alarm.prediction_time + 30.0
    assert alarm.baseline_rate == pytest.approx(0.1, abs=0.01)
    assert alarm.alarm_rate == pytest.approx(0.2, abs=0.05)
    assert stored_states(sql)["rule"].labeled == 8_000


def test_no_alarm_on_100000_stationary_events(sql: Any) -> None:
    """The acceptance criterion, at the service level: the joined pairs of 100,000 events
    with a steady 10 % error rate, all on one partition, through the observer and SQL."""
    errs = errors(2, (100_000, 0.1))
    observer = DetectorObserver({"fraud": CLASSIFIER})
    assert feed(sql, observer, [pair(i, e) for i, e in enumerate(errs)], flush=5_000) == []
    with sql() as s:
        assert s.scalar(select(func.count()).select_from(ConceptDriftAlarmRow)) == 0
    [(name, state)] = stored_states(sql).items()
    assert (name, state.labeled, state.loss) == ("rule", 100_000, "zero_one")
    assert state.state["adwin"]["width"] == 100_000  # not even an ADWIN cut


def test_state_after_a_rolled_back_flush_and_its_replay_equals_one_uninterrupted_feed(
    sql: Any,
) -> None:
    errs = errors(3, (3_000, 0.1), (2_000, 0.3))
    pairs = [pair(i, e, partition=i % 2) for i, e in enumerate(errs)]
    observer = DetectorObserver({"fraud": DetectorSpec("fraud", Task.CLASSIFICATION, ALL)})
    before = feed(sql, observer, pairs[:2_000])
    # A crash inside the flush transaction: the detectors ran, nothing was committed.
    with pytest.raises(RuntimeError), sql.begin() as session:
        assert observer.joined(session, {0: list(pairs[2_000:4_000:2])})
        raise RuntimeError("killed")
    # The replay reads the same pairs again, from the committed state.
    alarms = before + feed(sql, observer, pairs[2_000:])
    for partition in (0, 1):
        losses = [float(e) for e in errs[partition::2]]
        expected, drifts = pure(ALL, losses)
        held = stored_states(sql, partition)
        assert {name: s.state for name, s in held.items()} == expected
        assert {name: s.labeled for name, s in held.items()} == dict.fromkeys(ALL, 2_500)
        stored = [(a.detector, a.labeled) for a in stored_alarms(sql) if a.partition == partition]
        assert sorted(stored) == sorted(drifts)
    assert stored_alarms(sql) == alarms  # the rolled-back flush's are gone
    assert any(a.detector == "rule" for a in alarms)


def test_a_regression_is_fed_its_clipped_scaled_absolute_error(sql: Any) -> None:
    rng = np.random.default_rng(4)
    misses = np.concatenate([rng.normal(0, 1, 4_000), rng.normal(0, 2, 2_000)]).tolist()
    spec = DetectorSpec("fraud", Task.REGRESSION, ("rule", "adwin"), regression_scale(1.0))
    assert spec.loss == "abs/3.0"
    alarms = feed(
        sql, DetectorObserver({"fraud": spec}), [pair(i, m) for i, m in enumerate(misses)]
    )
    losses = [min(abs((10.0 + m) - 10.0) / 3.0, 1.0) for m in misses]
    expected, drifts = pure(spec.detectors, losses)
    assert {n: s.state for n, s in stored_states(sql).items()} == expected
    assert [(a.detector, a.labeled) for a in alarms] == drifts
    rule = [a for a in alarms if a.detector == "rule"]
    assert len(rule) == 1 and 4_000 < rule[0].labeled < 4_600
    assert rule[0].baseline_rate == pytest.approx(0.266, abs=0.02)  # E min(|z| / 3, 1)


def test_versions_and_partitions_have_their_own_detectors(sql: Any) -> None:
    observer = DetectorObserver({"fraud": CLASSIFIER, "other": CLASSIFIER})
    pairs = [pair(i, i % 3 == 0, partition=i % 2, version=f"v{i % 3 % 2}") for i in range(60)]
    feed(sql, observer, pairs)
    with sql() as s:
        held = DetectorStateRepository(s).load(
            [("fraud", v, p) for v in ("v0", "v1") for p in (0, 1)]
        )
    assert {k: s.labeled for k, s in held.items()} == {
        DetectorKey("fraud", "v0", 0, "rule"): 20,
        DetectorKey("fraud", "v0", 1, "rule"): 20,
        DetectorKey("fraud", "v1", 0, "rule"): 10,
        DetectorKey("fraud", "v1", 1, "rule"): 10,
    }


def test_a_changed_loss_starts_the_detector_over(sql: Any) -> None:
    feed(
        sql,
        DetectorObserver({"fraud": DetectorSpec("fraud", Task.REGRESSION, scale=3.0)}),
        [pair(i, 1.0) for i in range(100)],
    )
    rescaled = DetectorObserver({"fraud": DetectorSpec("fraud", Task.REGRESSION, scale=6.0)})
    feed(sql, rescaled, [pair(i, 1.0) for i in range(100, 110)])
    [state] = stored_states(sql).values()
    assert (state.loss, state.labeled) == ("abs/6.0", 110)
    rule = AlarmRule.from_state(state.state)
    assert (rule.n, rule.adwin.total) == (10, pytest.approx(10 / 6))


def test_models_without_detectors_and_unjudgeable_pairs_are_skipped(sql: Any) -> None:
    observer = DetectorObserver({"fraud": DetectorSpec("fraud", Task.CLASSIFICATION, ())})
    assert feed(sql, observer, [pair(i, True) for i in range(10)]) == []
    assert stored_states(sql) == {}
    record = PredictionRecord(0, "fraud", "x", "v1", T, T, None, None, None, T)
    assert CLASSIFIER.loss_of(JoinedPair(record, "1", T)) is None
    regression = DetectorSpec("fraud", Task.REGRESSION, scale=1.0)
    assert regression.loss_of(JoinedPair(record._replace(value=1.0), "yes", T)) is None
    assert regression.loss_of(JoinedPair(record._replace(value=1.0), "1.5", T)) == 0.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(task=Task.CLASSIFICATION, detectors=("cusum",)), "unknown detector 'cusum'"),
        (dict(task=Task.CLASSIFICATION, detectors=("rule", "rule")), "listed twice"),
        (dict(task=Task.REGRESSION), "needs a loss scale"),
        (dict(task=Task.REGRESSION, detectors=("ddm", "rule"), scale=1.0), "ddm take 0/1"),
    ],
)
def test_detector_specs_are_checked(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DetectorSpec("fraud", **spec)


# -- through the ingestion loop: the real join, a crash before a flush, a failed commit --


def test_the_loop_feeds_each_joined_pair_once_across_a_crash_and_a_failed_commit(
    sql: Any, clock: FakeClock
) -> None:
    names = ("rule", "ddm")
    spec = DetectorSpec("fraud", Task.CLASSIFICATION, names)
    preds = [pred(T + i * 0.05, f"e{i}") for i in range(400)]  # class "0"
    # In label order: 300 right, then 100 wrong.
    labels = [label(T + 30 + i * 0.05, f"e{i}", 0 if i < 300 else 1) for i in range(400)]
    first = JoinRig(sql, clock)
    first.loop.labels.observer = DetectorObserver({"fraud": spec})
    first.step(preds=preds)
    first.step(labels=labels[:250])
    # Reads the rest, then dies before flushing it.
    first.add_labels(0, *labels[250:])
    while batch := first.loop._poll(0):
        first.loop._process(batch)
    second = JoinRig(sql, clock)
    second.loop.labels.observer = DetectorObserver({"fraud": spec})
    second.store.fail_commits = 1
    second.step(preds=preds, labels=labels)
    expected, drifts = pure(names, [0.0] * 300 + [1.0] * 100)
    held = stored_states(sql)
    assert {name: s.state for name, s in held.items()} == expected
    assert {name: s.labeled for name, s in held.items()} == {"rule": 400, "ddm": 400}
    assert sorted((a.detector, a.labeled) for a in stored_alarms(sql)) == sorted(drifts)
    reported = second.stats.of("alarms") + first.stats.of("alarms")
    assert sorted(d for _, _, d, _ in reported) == sorted(d for d, _ in drifts)
    assert {"ddm", "rule"} <= {d for d, _ in drifts}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T + 100.0)
