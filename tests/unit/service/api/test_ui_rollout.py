"""The overview page's rollout panel: its view-model on stored rows, and the page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository, RolloutRow
from db.session import transaction
from drift.canary import Check, Outcome
from service.api.app import create_app
from service.api.ui_rollout import (
    AnalysisView,
    CheckView,
    Transition,
    rollout_view,
    share,
)
from tests.unit.service.api.conftest import READ, Api
from tests.unit.service.api.test_ui import sign_in

T0 = datetime(2026, 12, 5, 9, tzinfo=UTC)
MIN = timedelta(minutes=1)
WEIGHTS = (5, 25, 50, 100)
HOSTILE = '<script>alert("x")</script>'


def _enter(s: Session, rollout: RolloutRow, phase: str, step: int, note: str, at: datetime) -> None:
    rollout.step = step
    rollout.canary_percent = WEIGHTS[step]
    RolloutRepository(s).enter(rollout, phase, note, at)


def _rollout(s: Session) -> int:
    """v2 against v1: step 1 passed, step 2 judged (one check failed, one inconclusive),
    then paused."""
    registry = RegistryRepository(s)
    v1 = registry.register("fraud", "v1", "file:///v1", "a" * 64, Stage.PRODUCTION, T0)
    v2 = registry.register("fraud", "v2", "file:///v2", "b" * 64, Stage.CANARY, T0)
    repository = RolloutRepository(s)
    rollout = repository.start("fraud", None, v1.id, v2.id, "pending", "rolling out v2", T0)
    assert rollout is not None
    _enter(s, rollout, "progressing", 0, "step 1 of 4: v2 at 5%", T0 + MIN)
    passed = Check("sample_ratio", Outcome.PASS, 0.4, 0.001, 600, 11000, "split as told")
    repository.add_analysis(rollout.id, 0, (T0 + MIN, T0 + 11 * MIN), [passed], T0 + 11 * MIN)
    _enter(s, rollout, "progressing", 1, "step 2 of 4: v2 at 25%", T0 + 11 * MIN)
    checks = [
        Check("prediction_divergence", Outcome.FAIL, 0.31, 0.1, 2600, 7800, HOSTILE),
        Check("accuracy_noninferiority", Outcome.INCONCLUSIVE, None, 0.02, 40, 120, "too few"),
    ]
    repository.add_analysis(rollout.id, 1, (T0 + 11 * MIN, T0 + 21 * MIN), checks, T0 + 21 * MIN)
    rollout.reason = HOSTILE
    _enter(s, rollout, "paused", 1, "sample ratio mismatch", T0 + 21 * MIN)
    return rollout.id


@pytest.mark.parametrize(
    ("phase", "step", "expected"),
    [
        ("pending", 0, 0),
        ("progressing", 0, 5),
        ("progressing", 2, 50),
        ("paused", 1, 25),
        # Past the configured steps (a restart with fewer): at the last weight.
        ("progressing", 7, 100),
        ("promoting", 3, 100),
        ("promoted", 3, 100),
        ("rolling_back", 1, 0),
        ("rolled_back", 1, 0),
    ],
)
def test_the_candidate_share_of_each_phase(phase: str, step: int, expected: int) -> None:
    assert share(phase, step, WEIGHTS) == expected


def test_a_step_share_is_unknown_without_configured_steps() -> None:
    assert share("progressing", 1, ()) is None
    assert share("promoted", 3, ()) == 100


def test_the_view_holds_the_newest_rollout_its_history_and_newest_analysis(
    sqlite_api: Api,
) -> None:
    with transaction(sqlite_api.sessions) as s:
        rollout_id = _rollout(s)
    with transaction(sqlite_api.sessions) as s:
        view = rollout_view(s, "fraud", WEIGHTS)
        assert rollout_view(s, "churn", WEIGHTS) is None
    assert view is not None
    assert (view.id, view.phase, view.active, view.step, view.steps) == (
        rollout_id,
        "paused",
        True,
        1,
        4,
    )
    assert (view.canary_percent, view.share, view.stable, view.candidate, view.reason) == (
        25,
        25,
        "v1",
        "v2",
        HOSTILE,
    )
    assert view.history == (
        Transition(T0, "pending", 0, 0, "rolling out v2"),
        Transition(T0 + MIN, "progressing", 0, 5, "step 1 of 4: v2 at 5%"),
        Transition(T0 + 11 * MIN, "progressing", 1, 25, "step 2 of 4: v2 at 25%"),
        Transition(T0 + 21 * MIN, "paused", 1, 25, "sample ratio mismatch"),
    )
    # Only step 2's evaluation, both of its checks.
    assert view.analysis == AnalysisView(
        1,
        T0 + 11 * MIN,
        T0 + 21 * MIN,
        T0 + 21 * MIN,
        (
            CheckView("prediction_divergence", "fail", 0.31, 0.1, 2600, 7800, HOSTILE),
            CheckView("accuracy_noninferiority", "inconclusive", None, 0.02, 40, 120, "too few"),
        ),
    )
    # The chart: one point per transition instant, the pause flagged.
    (series,) = view.chart.series
    assert series.name == "v2"
    (line,) = series.lines
    assert len(line.split()) == 4
    assert len(view.chart.flags) == 1


def test_without_configured_steps_only_the_current_phase_has_a_share(sqlite_api: Api) -> None:
    with transaction(sqlite_api.sessions) as s:
        _rollout(s)
    with transaction(sqlite_api.sessions) as s:
        view = rollout_view(s, "fraud", ())
    assert view is not None
    assert [t.share for t in view.history] == [0, None, None, 25]


@pytest.fixture
def browser(sqlite_api: Api) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_api.deps), follow_redirects=False) as client:
        yield client


def _sections(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-model="(\w+)">(.*?)</section>', page, flags=re.S))


def test_the_page_shows_the_rollout_escaped_and_no_rollout_yet_elsewhere(
    sqlite_api: Api, browser: TestClient
) -> None:
    with transaction(sqlite_api.sessions) as s:
        _rollout(s)
    sign_in(browser, READ)
    page = browser.get("/").text
    sections = _sections(page)
    assert (
        "No rollout yet." in sections["churn"]
        and 'data-chart="canary weight"' not in sections["churn"]
    )
    fraud = sections["fraud"]
    assert 'data-panel="rollout"' in fraud and 'data-chart="canary weight"' in fraud
    assert HOSTILE not in page and "&lt;script&gt;" in fraud
    assert '<tr data-check="prediction_divergence">' in fraud
    assert re.search(r"<td>accuracy_noninferiority</td>.*?inconclusive.*?n/a", fraud, re.S)
    assert "paused" in fraud and re.search(r"2 of 4</td>\s*<td>25%</td>", fraud)
