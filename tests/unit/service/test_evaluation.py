"""Window evaluation against stored profiles, fed through the real ingestion path.

Events go through the decoder, the window accumulator and the checkpoint
store exactly as in the service, only without Kafka, so these tests cover the
whole path from event bytes to stored drift reports on both databases.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from consumers.checkpoint import CheckpointStore
from consumers.events import EventDecoder
from consumers.synthetic import SyntheticPlan, SyntheticStream, write_reference_csv
from consumers.window import WindowAccumulator
from db.models import DriftReportRow, WindowAggregate
from db.reports import DriftReportRepository, WindowVerdict
from db.repositories import OffsetAdvance
from db.session import transaction
from drift.errors import ProfileMismatch
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from service.config import ModelConfig
from service.monitoring import reference
from service.monitoring.evaluation import (
    EvaluationSettings,
    Judging,
    NoDriftObserver,
    WindowEvaluator,
)

T0 = 1_800_000_000.0
WINDOW = 10
TOPIC = "predictions"
MODEL_CONFIG = ModelConfig.model_validate(
    {
        "window": WINDOW,
        "prediction": {"type": "numerical"},
        "features": {
            "amount": {"type": "numerical"},
            "age_days": {"type": "numerical"},
            "txn_per_hour": {"type": "numerical"},
            "distance_km": {"type": "numerical", "nullable": True},
            "country": {"type": "categorical"},
            "channel": {"type": "categorical", "nullable": True},
        },
    }
)
SPEC = MODEL_CONFIG.spec("fraud")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def build_profile(sessions: sessionmaker[Session], tmp_path: Path, spec: ModelSpec = SPEC) -> int:
    path = tmp_path / "reference.csv"
    write_reference_csv(SyntheticPlan(spec, draw_seed=99), 5000, path)
    columns = reference.read_reference(path, spec, progress=False)
    built = reference.profile_columns(columns, spec, MODEL_CONFIG, "test")
    return reference.store(sessions, spec.name, built, datetime.now(UTC)).version


def ingest(
    sessions: sessionmaker[Session],
    spec: ModelSpec,
    windows: int,
    drift_at: float | None,
    rate: float = 150.0,
    partitions: int = 2,
) -> None:
    """Stream ``windows`` windows of synthetic events into SQL, spread over partitions."""
    decoder = EventDecoder({spec.name: spec})
    stream = SyntheticStream(SyntheticPlan(spec, rate=rate, start=T0, drift_at=drift_at))
    store = CheckpointStore(sessions, "g", lambda: T0)
    events = list(stream.events(int(windows * WINDOW * rate)))
    offsets = dict.fromkeys(range(partitions), 0)
    marks: dict[int, float | None] = dict.fromkeys(range(partitions))
    acc = WindowAccumulator(decoder.codecs)
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]
        advances = []
        for p in range(partitions):
            mine = [e.prediction for i, e in enumerate(chunk) if (start + i) % partitions == p]
            decoded = decoder.decode_batch(mine)
            marks[p] = acc.add_partition_batch(p, decoded.events, marks[p], lambda *_: None)
            expected = offsets[p] or None
            offsets[p] += len(mine)
            advances.append(OffsetAdvance(TOPIC, p, expected, offsets[p], marks[p]))
        store.commit(advances, acc.take())


def evaluator(sessions: sessionmaker[Session], clock: Clock, **judging: object) -> WindowEvaluator:
    return WindowEvaluator(
        sessions,
        {"fraud": Judging(spec=SPEC, **judging)},  # type: ignore[arg-type]
        EvaluationSettings(topic=TOPIC, consumer_group="g", idle_partition_timeout=60),
        clock=clock,
    )


def aligned(sessions: sessionmaker[Session]) -> ModelSpec:
    return evaluator(sessions, Clock(T0)).refresh_profiles()["fraud"]


def test_a_stable_stream_raises_no_flag_and_a_shift_is_flagged_in_its_first_window(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    spec = replace(aligned(sessions), sample_size=500)
    ingest(sessions, spec, windows=53, drift_at=50 * WINDOW)
    written = evaluator(sessions, Clock(T0)).tick()
    with sessions() as s:
        reports = DriftReportRepository(s).summaries("fraud", limit=1000)
        first_drifted = DriftReportRepository(s).get(reports[50].id)
    # The last window is still open: its successor has not pushed the watermark past it.
    assert len(written) == len(reports) == 52
    assert all(r.source == "sketch" for r in reports)
    assert [r.dataset_drift for r in reports[:50]] == [False] * 50
    assert reports[50].window_start.timestamp() == T0 + 50 * WINDOW
    assert reports[50].dataset_drift is True and reports[51].dataset_drift is True
    assert first_drifted is not None and first_drifted.sample is not None
    assert len(first_drifted.top_drifted()) == 3
    assert first_drifted.prediction_method is not None


def test_evaluation_is_idempotent_and_waits_for_the_slowest_partition(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    ingest(sessions, aligned(sessions), windows=3, drift_at=None)  # partitions 0, 1 at T0
    # A third partition lags far behind in event time; it last moved at T0 - 100.
    CheckpointStore(sessions, "g", lambda: T0 - 100).commit(
        [OffsetAdvance(TOPIC, 2, None, 1, T0 - 100)], {}
    )
    clock = Clock(T0 - 50)
    assert evaluator(sessions, clock).tick() == []  # it still counts: nothing has closed
    clock.now = T0 + 30  # it is idle now; the others have passed two windows
    first = evaluator(sessions, clock).tick()
    again = evaluator(sessions, clock).tick()
    assert len(first) == 2 and again == []
    clock.now = T0 + 61  # every partition is idle: the stream stopped, the last window closes
    assert len(evaluator(sessions, clock).tick()) == 1
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(DriftReportRow)) == 3


class Reports:
    """A :class:`DriftObserver` that keeps what it was told."""

    def __init__(self) -> None:
        self.windows: list[tuple[str, str, int]] = []
        self.unjudged: list[str] = []

    def drift_report(self, verdict: WindowVerdict) -> None:
        self.windows.append((verdict.model, verdict.model_version, verdict.window_start))

    def drift_unjudged(self, model: str) -> None:
        self.unjudged.append(model)


def test_the_observer_hears_of_each_stored_report_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    ingest(sessions, aligned(sessions), windows=3, drift_at=None)
    settings = EvaluationSettings(topic=TOPIC, consumer_group="g", idle_partition_timeout=60)
    first, second = Reports(), Reports()
    models = {"fraud": Judging(spec=SPEC)}
    written = WindowEvaluator(sessions, models, settings, first, Clock(T0 + 30)).tick()
    # Another replica, a moment later: the windows are reported already, so it hears nothing.
    assert WindowEvaluator(sessions, models, settings, second, Clock(T0 + 31)).tick() == []
    with sessions() as s:
        stored = [DriftReportRepository(s).get(report_id) for report_id in written]
    assert len(written) == 2 and second.windows == []
    assert first.windows == [
        (r.summary.model, r.summary.model_version, int(r.summary.window_start.timestamp()))
        for r in stored
        if r is not None
    ]
    # Without an observer the evaluator reports to a no-op one.
    assert isinstance(evaluator(sessions, Clock(T0))._observer, NoDriftObserver)


def test_a_window_whose_row_cannot_be_read_is_skipped_once_and_the_others_are_judged(
    sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build_profile(sessions, tmp_path)
    ingest(sessions, aligned(sessions), windows=4, drift_at=None)
    first = datetime.fromtimestamp(T0, UTC)
    with transaction(sessions) as s:
        damaged = s.execute(
            update(WindowAggregate)
            .where(WindowAggregate.window_start == first, WindowAggregate.partition == 0)
            .values(sketch=b"not a sketch")
        )
        assert damaged.rowcount == 1  # type: ignore[attr-defined]
    heard = Reports()
    settings = EvaluationSettings(topic=TOPIC, consumer_group="g", idle_partition_timeout=60)
    ev = WindowEvaluator(sessions, {"fraud": Judging(spec=SPEC)}, settings, heard, Clock(T0 + 40))
    with caplog.at_level(logging.ERROR, logger="service.monitoring.unjudged"):
        written = ev.tick()
        assert ev.tick() == []  # tried again, named and counted only the first time
    # The oldest window held back neither the windows after it nor the next ticks.
    assert len(written) == 2 and [w[2] for w in heard.windows] == [T0 + 10, T0 + 20]
    assert heard.unjudged == ["fraud"]
    [line] = [r.getMessage() for r in caplog.records if r.name.startswith("service.monitoring")]
    assert line.startswith(f"drift window fraud/{heard.windows[0][1]} at {first.isoformat()} ")
    assert "cannot decode window sketch" in line
    # Repaired (here: the partition's row removed), the window is judged at the next tick.
    with transaction(sessions) as s:
        s.execute(
            delete(WindowAggregate).where(
                WindowAggregate.window_start == first, WindowAggregate.partition == 0
            )
        )
    assert len(ev.tick()) == 1 and heard.windows[-1][2] == T0


def test_small_windows_held_whole_use_exact_values(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    spec = replace(aligned(sessions), sample_size=2000)
    ingest(sessions, spec, windows=3, drift_at=None, rate=20.0)
    evaluator(sessions, Clock(T0)).tick()
    with sessions() as s:
        reports = DriftReportRepository(s).summaries("fraud")
    assert [r.source for r in reports] == ["exact", "exact"]
    assert all(r.events == 200 for r in reports)


def test_windows_ingested_on_other_bins_are_judged_on_their_sample(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    # Ingested before any profile existed: the configured (default) bins.
    ingest(sessions, replace(SPEC, sample_size=300), windows=3, drift_at=None)
    build_profile(sessions, tmp_path)
    evaluator(sessions, Clock(T0)).tick()
    with sessions() as s:
        reports = DriftReportRepository(s).summaries("fraud")
    assert [r.source for r in reports] == ["sample", "sample"]
    assert [r.dataset_drift for r in reports] == [False, False]


def test_confirmation_needs_consecutive_drifted_windows(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    ingest(sessions, aligned(sessions), windows=6, drift_at=2 * WINDOW)
    evaluator(sessions, Clock(T0), confirm_windows=3).tick()
    with sessions() as s:
        reports = DriftReportRepository(s).summaries("fraud")
    assert [r.dataset_drift for r in reports] == [False, False, True, True, True]
    assert [r.confirmed for r in reports] == [False, False, False, False, True]


def test_per_feature_overrides_reach_the_report(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    ingest(sessions, aligned(sessions), windows=2, drift_at=None)
    evaluator(sessions, Clock(T0), methods={"amount": "psi"}, thresholds={"amount": 0.5}).tick()
    with sessions() as s:
        repo = DriftReportRepository(s)
        detail = repo.get(repo.summaries("fraud")[0].id)
    assert detail is not None
    amount = next(f for f in detail.features if f.feature == "amount")
    assert (amount.method, amount.threshold) == ("psi", 0.5)


def test_a_profile_is_aligned_once_and_a_new_version_realigns(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    judge = evaluator(sessions, Clock(T0))
    first = judge.refresh_profiles()["fraud"]
    # Every tick asks for every model's spec: the same object, not a new alignment.
    assert judge.refresh_profiles()["fraud"] is first
    assert judge.specs()["fraud"] is first
    assert first.layout != SPEC.layout
    path = tmp_path / "other.csv"
    write_reference_csv(SyntheticPlan(SPEC, draw_seed=7), 300, path)
    columns = reference.read_reference(path, SPEC, progress=False)
    built = reference.profile_columns(columns, SPEC, MODEL_CONFIG, "test")
    reference.store(sessions, "fraud", built, datetime.now(UTC))
    second = judge.refresh_profiles()["fraud"]
    assert second.layout not in (first.layout, SPEC.layout)
    assert judge.specs()["fraud"] is second


def test_a_model_without_a_profile_is_not_evaluated(sessions: sessionmaker[Session]) -> None:
    ingest(sessions, SPEC, windows=3, drift_at=None)
    assert evaluator(sessions, Clock(T0)).tick() == []


# A spec of fewer features than fraud's: a profile built on it does not describe fraud.
OTHER_FEATURES = ModelSpec(
    "fraud",
    (FeatureSpec("amount", FeatureKind.NUMERICAL),),
    PredictionSpec(PredictionKind.NUMERICAL),
    window_seconds=WINDOW,
)


def test_a_profile_of_other_features_is_refused(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path, OTHER_FEATURES)
    with pytest.raises(ProfileMismatch, match="lacks features"):
        evaluator(sessions, Clock(T0)).refresh_profiles()


def test_a_model_without_a_profile_is_named_once_with_the_command_that_builds_one(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    ingest(sessions, SPEC, windows=3, drift_at=None)
    judge = WindowEvaluator(
        sessions,
        {"fraud": Judging(spec=SPEC)},
        EvaluationSettings(topic=TOPIC, consumer_group="g", config_path="demo/driftwatch.yaml"),
        clock=Clock(T0 + 100 * WINDOW),
    )
    with caplog.at_level(logging.WARNING):
        assert judge.tick() == [] and judge.tick() == []
    hints = [r.getMessage() for r in caplog.records if "no reference profile" in r.getMessage()]
    assert hints == [
        "model fraud has no reference profile; its windows are not evaluated "
        "(driftwatch reference build --config demo/driftwatch.yaml --model fraud FILE)"
    ]


def test_a_new_profile_of_other_features_is_refused_alone_and_judging_goes_on(
    sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a replica still running the older config sees after `reference build` ran with
    # a newer one: a current profile that lacks the model's features.
    build_profile(sessions, tmp_path)
    ingest(sessions, aligned(sessions), windows=3, drift_at=None)
    judge = evaluator(sessions, Clock(T0 + 3600))
    held = judge.refresh_profiles()["fraud"]
    build_profile(sessions, tmp_path, OTHER_FEATURES)
    caplog.set_level(logging.ERROR, logger="service.monitoring.evaluation")
    assert len(judge.tick()) == 3  # judged on the profile it held
    assert judge.tick() == [] and judge.specs()["fraud"] is held
    (line,) = [r.getMessage() for r in caplog.records if r.name.endswith("evaluation")]
    assert "model fraud: reference profile v2 is not used" in line and "lacks features" in line
    assert "judged on v1 meanwhile" in line
    with pytest.raises(ProfileMismatch):  # at start-up it stops the service
        evaluator(sessions, Clock(T0)).refresh_profiles()
