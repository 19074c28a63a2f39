"""The canary analysis on stored per-version aggregates, written as ingestion writes them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_session_factory
from drift.canary import Check, Outcome
from retrain.errors import RouterError
from retrain.rollout.analysis import analyse
from retrain.rollout.settings import RolloutSettings
from retrain.rollout.span import Analyse, AnalysisSettings, Span
from tests.unit.retrain.rollout.analysis_support import Events, Ingestion, Version, at, stream

# The state machine calls it through this type; mypy --strict on this file checks the fit.
ANALYSE: Analyse = analyse
SETTINGS = AnalysisSettings()
STABLE = Version("v1", 0.75)
HEALTHY = Version("v2", 0.25)
SPAN = Span("fraud", "v1", "v2", at(0), at(600), canary_percent=25)
LATENCY = "latency_p95_ratio"


@pytest.fixture
def sql(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def stored(sql: sessionmaker[Session], *parts: Events) -> Events:
    """Ingest ``parts`` in order (each in time order, later parts later) and return them."""
    ingestion, total = Ingestion(sql), Events()
    for part in parts:
        ingestion.add(part)
        total.extend(part)
    return total


def run(
    sql: sessionmaker[Session], span: Span = SPAN, settings: AnalysisSettings = SETTINGS
) -> dict[str, Check]:
    with sql() as session:
        checks = ANALYSE(session, span, settings)
    assert len({c.name for c in checks}) == len(checks) == 4
    return {c.name: c for c in checks}


def outcomes(checks: dict[str, Check]) -> dict[str, Outcome]:
    return {name: c.outcome for name, c in checks.items()}


def healthy(seed: int = 1, n: int = 8000, canary: Version = HEALTHY) -> Events:
    return stream(np.random.default_rng(seed), (STABLE, canary), n, 0, 600)


def test_a_healthy_canary_passes_every_check(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        sql = make_session_factory(engine)
        events = stored(sql, healthy())
        checks = run(sql)
    finally:
        engine.dispose()
    assert outcomes(checks) == {
        "sample_ratio": Outcome.PASS,
        "prediction_divergence": Outcome.PASS,
        "accuracy_noninferiority": Outcome.PASS,
        LATENCY: Outcome.PASS,
    }
    # Every event of each version, over both partitions and all ten windows, and every
    # labelled pair: nothing lost, nothing counted twice.
    for c in checks.values():
        assert (c.n_canary, c.n_stable) == (events.counts["v2"], events.counts["v1"])
    srm = checks["sample_ratio"]
    assert (srm.details["windows_canary"], srm.details["windows_stable"]) == (10.0, 10.0)
    assert srm.details["expected_share"] == 0.25
    accuracy = checks["accuracy_noninferiority"]
    assert accuracy.details["canary"] == pytest.approx(0.9, abs=0.001)
    assert accuracy.details["stable"] == pytest.approx(0.9, abs=0.001)
    assert checks["prediction_divergence"].details["left_out_canary"] == 0.0


def test_shifted_predictions_fail_the_divergence_check(sql: sessionmaker[Session]) -> None:
    stored(sql, healthy(canary=replace(HEALTHY, shift=0.15)))
    checks = run(sql)
    assert outcomes(checks) == {
        "sample_ratio": Outcome.PASS,
        "prediction_divergence": Outcome.FAIL,
        # Right as often as stable about its own (shifted) classes.
        "accuracy_noninferiority": Outcome.PASS,
        LATENCY: Outcome.PASS,
    }
    divergence = checks["prediction_divergence"]
    assert divergence.value is not None and divergence.value > SETTINGS.divergence_threshold


def test_accuracy_worse_by_twice_the_margin_fails_the_performance_check(
    sql: sessionmaker[Session],
) -> None:
    stored(sql, healthy(canary=replace(HEALTHY, accuracy_percent=86)))
    checks = run(sql)
    assert outcomes(checks) == {
        "sample_ratio": Outcome.PASS,
        "prediction_divergence": Outcome.PASS,
        "accuracy_noninferiority": Outcome.FAIL,
        LATENCY: Outcome.PASS,
    }
    accuracy = checks["accuracy_noninferiority"]
    assert accuracy.value == pytest.approx(-2 * SETTINGS.margin, abs=0.002)
    assert accuracy.details["upper"] < -SETTINGS.margin


def test_a_split_off_the_routers_weight_fails_the_sample_ratio_check(
    sql: sessionmaker[Session],
) -> None:
    stored(sql, healthy(canary=replace(HEALTHY, share=0.5)))
    checks = run(sql)  # the router was told 25 %
    assert outcomes(checks) == {
        "sample_ratio": Outcome.FAIL,
        "prediction_divergence": Outcome.PASS,
        "accuracy_noninferiority": Outcome.PASS,
        LATENCY: Outcome.PASS,
    }
    srm = checks["sample_ratio"]
    assert srm.value is not None and srm.value < SETTINGS.srm_alpha
    assert srm.details["observed_share"] == pytest.approx(0.5, abs=0.02)
    # The same events at the weight the router really had pass.
    assert run(sql, replace(SPAN, canary_percent=50))["sample_ratio"].outcome is Outcome.PASS


def test_too_few_events_hold_the_divergence_and_performance_checks(
    sql: sessionmaker[Session],
) -> None:
    events = stored(sql, healthy(n=300))
    checks = run(sql)
    assert checks["prediction_divergence"].outcome is Outcome.INCONCLUSIVE
    assert checks["accuracy_noninferiority"].outcome is Outcome.INCONCLUSIVE
    assert "at least 500 per version" in checks["prediction_divergence"].reason
    assert "at least 200 per version" in checks["accuracy_noninferiority"].reason
    assert checks[LATENCY].outcome is Outcome.INCONCLUSIVE
    assert "at least 200 per version" in checks[LATENCY].reason
    # 300 events are enough to test a 25 % split.
    assert checks["sample_ratio"].outcome is Outcome.PASS
    assert checks["sample_ratio"].n_canary == events.counts["v2"]


def in_span(events: Events, version: str, start: float, end: float) -> int:
    lo, hi = at(start).timestamp(), at(end).timestamp()
    return sum(
        1
        for e in events.predictions
        if e.model_version == version and lo <= e.event_time < hi and e.model == "fraud"
    )


def test_only_whole_windows_within_the_span_are_judged(sql: sessionmaker[Session]) -> None:
    rng = np.random.default_rng(7)
    # Around the span: a canary that is wrong in every way, at the wrong share.
    bad = Version("v2", 0.9, shift=0.4, accuracy_percent=50, latency_scale=3.0)
    before = stream(rng, (STABLE, bad), 2000, -120, 120)
    inside = stream(rng, (STABLE, HEALTHY), 8000, 0, 600)
    after = stream(rng, (STABLE, bad), 2000, 600, 120)
    stored(sql, before, inside, after)
    # Starting and ending mid-window: the windows at 0 and at 600 straddle its ends.
    span = replace(SPAN, start=at(30), end=at(630))
    checks = run(sql, span)
    assert set(outcomes(checks).values()) == {Outcome.PASS}
    srm = checks["sample_ratio"]
    assert srm.n_canary == in_span(inside, "v2", 60, 600)
    assert srm.n_stable == in_span(inside, "v1", 60, 600)
    assert srm.details["windows_canary"] == 9.0
    # The whole stream, bad windows included, fails: the span's bounds are what kept them out.
    everything = run(sql, replace(SPAN, start=at(-120), end=at(720)))
    assert set(outcomes(everything).values()) == {Outcome.FAIL}


def test_other_models_and_other_versions_are_ignored(sql: sessionmaker[Session]) -> None:
    rng = np.random.default_rng(11)
    third = Version("v3", 0.9, shift=0.4, accuracy_percent=50)
    fraud = healthy(seed=3)
    others = stream(rng, (replace(STABLE, name="v0"), third), 4000, 0, 600, tag="others")
    # The same version names under another model, at another split, with other classes.
    churn = stream(rng, (STABLE, replace(third, name="v2")), 4000, 0, 600, model="churn")
    stored(sql, fraud, others, churn)
    checks = run(sql)
    assert set(outcomes(checks).values()) == {Outcome.PASS}
    for c in checks.values():
        assert (c.n_canary, c.n_stable) == (fraud.counts["v2"], fraud.counts["v1"])


def test_a_version_without_events_is_inconclusive_except_for_the_split(
    sql: sessionmaker[Session],
) -> None:
    stored(sql, healthy())
    checks = run(sql, replace(SPAN, canary="v9"))
    assert checks["prediction_divergence"].outcome is Outcome.INCONCLUSIVE
    assert checks["accuracy_noninferiority"].outcome is Outcome.INCONCLUSIVE
    for name in ("prediction_divergence", "accuracy_noninferiority"):
        assert "canary version 'v9'" in checks[name].reason
        assert "stable version" not in checks[name].reason
    # No canary event at all while stable had thousands at 25 %: the split is broken.
    assert checks["sample_ratio"].outcome is Outcome.FAIL
    assert checks["sample_ratio"].n_canary == 0


def test_an_unknown_model_gives_every_check_inconclusive(sql: sessionmaker[Session]) -> None:
    stored(sql, healthy())
    checks = run(sql, replace(SPAN, model="nope"))
    assert set(outcomes(checks).values()) == {Outcome.INCONCLUSIVE}
    assert all("'nope'" in c.reason for c in checks.values())
    assert "either version" in checks["sample_ratio"].reason
    assert "canary version 'v2' or stable version 'v1'" in checks["prediction_divergence"].reason


@pytest.mark.parametrize(("shift", "expected"), [(0.0, Outcome.PASS), (0.2, Outcome.FAIL)])
def test_categorical_predictions_are_compared_by_class_counts(
    sql: sessionmaker[Session], shift: float, expected: Outcome
) -> None:
    rng = np.random.default_rng(5)
    churn = stream(rng, (STABLE, replace(HEALTHY, shift=shift)), 8000, 0, 600, model="churn")
    stored(sql, churn)
    checks = run(sql, replace(SPAN, model="churn"))
    divergence = checks["prediction_divergence"]
    assert divergence.outcome is expected
    assert divergence.details["bins"] == 2.0  # the classes "0" and "1"
    assert checks["sample_ratio"].outcome is Outcome.PASS


@pytest.mark.parametrize(("scale", "expected"), [(1.0, Outcome.PASS), (1.5, Outcome.FAIL)])
def test_regression_compares_mean_absolute_errors(
    sql: sessionmaker[Session], scale: float, expected: Outcome
) -> None:
    rng = np.random.default_rng(9)
    canary = replace(HEALTHY, error_scale=scale)
    price = stream(rng, (STABLE, canary), 8000, 0, 600, model="price")
    stored(sql, price)
    span = replace(SPAN, model="price", task="regression")
    checks = run(sql, span, replace(SETTINGS, margin=0.2))
    mae = checks["mae_noninferiority"]
    assert mae.outcome is expected
    assert (mae.n_canary, mae.n_stable) == (price.counts["v2"], price.counts["v1"])
    assert mae.details["stable"] == pytest.approx(1.0, abs=0.05)
    assert mae.details["canary"] == pytest.approx(scale, abs=0.08)


def test_a_classification_span_over_regression_sketches_reads_no_pairs(
    sql: sessionmaker[Session],
) -> None:
    stored(sql, stream(np.random.default_rng(2), (STABLE, HEALTHY), 2000, 0, 600, model="price"))
    accuracy = run(sql, replace(SPAN, model="price"))["accuracy_noninferiority"]
    assert accuracy.outcome is Outcome.INCONCLUSIVE
    assert accuracy.details["other_task_rows"] == 40.0  # 2 versions x 10 windows x 2 partitions


def test_a_canary_against_itself_or_an_unknown_task_is_refused(
    sql: sessionmaker[Session],
) -> None:
    with sql() as session:
        with pytest.raises(ValueError, match="with itself"):
            analyse(session, replace(SPAN, canary="v1"), SETTINGS)
        with pytest.raises(ValueError, match="ranking"):
            analyse(session, replace(SPAN, task="ranking"), SETTINGS)


def test_a_canary_twice_as_slow_fails_the_latency_check(sql: sessionmaker[Session]) -> None:
    events = stored(sql, healthy(canary=replace(HEALTHY, latency_scale=2.0)))
    checks = run(sql)
    assert outcomes(checks) == {
        "sample_ratio": Outcome.PASS,
        "prediction_divergence": Outcome.PASS,
        "accuracy_noninferiority": Outcome.PASS,
        LATENCY: Outcome.FAIL,
    }
    latency = checks[LATENCY]
    assert (latency.n_canary, latency.n_stable) == (events.counts["v2"], events.counts["v1"])
    assert latency.value == pytest.approx(2.0, rel=0.1)
    assert latency.details["lower"] > SETTINGS.latency_max_ratio
    # The configured percentile and maximum are the ones applied.
    lenient = run(sql, settings=replace(SETTINGS, latency_percentile=50, latency_max_ratio=3.0))
    assert lenient["latency_p50_ratio"].outcome is Outcome.PASS
    assert lenient["latency_p50_ratio"].threshold == 3.0


def test_events_without_latency_give_an_inconclusive_check_that_holds_nothing(
    sql: sessionmaker[Session],
) -> None:
    stored(sql, healthy(canary=replace(HEALTHY, latency_scale=None)))
    checks = run(sql)
    latency = checks[LATENCY]
    assert latency.outcome is Outcome.INCONCLUSIVE and latency.value is None
    assert latency.reason.startswith(
        "inconclusive: no latency_ms in events of canary version 'v2' of model 'fraud'"
    )
    # No latency on one side: the rollout does not hold the step on it (phases._holds).
    assert latency.n_canary == 0 and latency.n_stable > 0
    assert {c.outcome for n, c in checks.items() if n != LATENCY} == {Outcome.PASS}


def test_a_stream_without_any_latency_names_both_versions(sql: sessionmaker[Session]) -> None:
    rng = np.random.default_rng(4)
    versions = (replace(STABLE, latency_scale=None), replace(HEALTHY, latency_scale=None))
    stored(sql, stream(rng, versions, 4000, 0, 600))
    latency = run(sql)[LATENCY]
    assert (latency.outcome, latency.n_canary, latency.n_stable) == (Outcome.INCONCLUSIVE, 0, 0)
    assert "no latency_ms in events of canary version 'v2' or stable version 'v1'" in (
        latency.reason
    )


def test_rollout_settings_refuse_bad_latency_settings_naming_the_key() -> None:
    for field, value, what in (
        ("latency_percentile", 100.0, "expected a percentile in (0, 100)"),
        ("latency_max_ratio", 1.0, "expected a finite ratio above 1"),
        ("latency_max_ratio", math.inf, "expected a finite ratio above 1"),
        ("latency_min_samples", 0, "expected at least 1"),
    ):
        analysis = replace(SETTINGS, **{field: value})
        with pytest.raises(RouterError) as caught:
            RolloutSettings("fraud", analysis=analysis)
        assert str(caught.value) == f"models.fraud.rollout.analysis.{field}: {what}"
