"""The rollout state machine with the fake router and scripted analyses, on SQLite and
PostgreSQL: every path to a final phase, pauses, router failures, one active rollout."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import transaction
from drift.canary import Check, Outcome
from retrain.errors import RolloutRefused
from retrain.rollout.base import Split, Target
from retrain.rollout.driver import RolloutDriver
from retrain.rollout.fake import FakeRouter
from retrain.rollout.lifecycle import Fleet
from retrain.rollout.manual import ManualRouter
from retrain.rollout.replicas import canary_replicas
from retrain.rollout.span import Span
from tests.unit.retrain.rollout.rollout_support import Rig, check, healthy, outcomes
from tests.unit.retrain.support import T0


@pytest.fixture
def rig(sessions: sessionmaker[Session]) -> Rig:
    return Rig(sessions, FakeRouter())


def router(rig: Rig) -> FakeRouter:
    assert isinstance(rig.router, FakeRouter)
    return rig.router


def weights(rig: Rig) -> list[int]:
    return [int(c.args[2]) for c in router(rig).calls if c.method == "set_weights"]


def test_a_healthy_canary_walks_every_step_and_is_promoted(rig: Rig) -> None:
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    assert rig.stages() == {"v1": "production", "run-1": "canary"}
    assert rig.walk(driver, rollout_id, 6) == [
        "progressing", "progressing", "progressing", "progressing", "promoting", "promoted",
    ]  # fmt: skip
    assert rig.history(rollout_id) == [
        ("pending", 0),
        ("progressing", 0),
        ("progressing", 1),
        ("progressing", 2),
        ("progressing", 3),
        ("promoting", 3),
        ("promoted", 3),
    ]
    # Each step's split is stated after its commit; promotion is asked after the commit
    # of promoting, and confirmed on the next tick, in the transaction that moves the
    # registry.
    assert weights(rig) == [5, 25, 50, 100]
    assert [c.method for c in router(rig).calls][-2:] == ["promote", "promote"]
    assert rig.stages() == {"v1": "archived", "run-1": "production"}
    assert rig.rollout(rollout_id)["active"] is False
    assert router(rig).canary is None and router(rig).stable is not None
    assert router(rig).stable.version == "run-1"
    # Every step was analysed on its own span, from its start to the judging tick.
    assert [s.canary_percent for s in rig.analysis.spans] == [5, 25, 50, 100]
    spans = rig.analysis.spans
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert {s.end - s.start for s in spans} == {timedelta(minutes=10)}
    assert {(s.stable, s.canary) for s in rig.analysis.spans} == {("v1", "run-1")}
    assert len(rig.analyses(rollout_id)) == 12
    assert [k for k, _ in rig.alerts()] == ["rollout_started", "rollout_promoted"]
    assert driver.tick() == {}


class QuarterRouter(FakeRouter):
    """Serves whole quarters of traffic, as the replicas router does with four replicas."""

    def set_weights(self, stable: Target, canary: Target, canary_percent: int) -> Split:
        return super().set_weights(stable, canary, 25 * canary_replicas(4, canary_percent))


def test_the_sample_ratio_is_judged_on_the_share_the_router_serves(
    sessions: sessionmaker[Session],
) -> None:
    rig = Rig(sessions, QuarterRouter())
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    assert rig.walk(driver, rollout_id, 6)[-1] == "promoted"
    # Steps of 5, 25, 50 and 100% served as 25, 25, 50 and 75%: judged on that.
    assert [s.canary_percent for s in rig.analysis.spans] == [25, 25, 50, 75]
    # A router that cannot say what it serves applies the weights as asked; one built
    # anew (a restart) and knowing nothing does not change what is judged.
    manual = Rig(sessions, ManualRouter("fraud"))
    driver = manual.driver()
    rollout_id = driver.start("fraud", manual.accepted_run("run-2"))
    manual.walk(driver, rollout_id, 1)
    manual.router = ManualRouter("fraud")
    driver = manual.driver()
    assert manual.walk(driver, rollout_id, 5)[-1] == "promoted"
    assert [s.canary_percent for s in manual.analysis.spans] == [5, 25, 50, 100]


def test_a_step_waits_for_its_min_duration_and_min_events(rig: Rig) -> None:
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    driver.tick()  # step 1 at 5%
    rig.clock.advance(minutes=9)
    driver.tick()
    assert rig.analysis.spans == []  # not analysed before min_duration
    rig.analysis.script = lambda span: [check("sample_ratio", Outcome.PASS, n_canary=99)]
    rig.clock.advance(minutes=1)
    driver.tick()
    assert rig.rollout(rollout_id)["step"] == 0  # 99 canary events of 100
    assert rig.analyses(rollout_id) == []  # too few events: nothing judged, nothing stored
    rig.analysis.script = lambda span: [check("sample_ratio", Outcome.PASS, n_canary=100)]
    driver.tick()
    assert rig.rollout(rollout_id)["step"] == 1
    # A held step states its split again on every tick (a crash may have lost it).
    assert weights(rig) == [5, 5, 5, 25]


def test_a_failed_check_rolls_back_and_rejects_the_candidate(rig: Rig) -> None:
    rig.analysis.script = outcomes({25: [check("prediction_divergence", Outcome.FAIL)]})
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    # The call after rolling_back's commit and the next tick's are not done yet.
    router(rig).hold(2)
    assert rig.walk(driver, rollout_id, 5) == [
        "progressing", "progressing", "rolling_back", "rolling_back", "rolled_back",
    ]  # fmt: skip
    state = rig.rollout(rollout_id)
    assert state["failed_checks"] == 1 and not state["active"]
    assert "prediction_divergence" in state["reason"]
    assert rig.stages() == {"v1": "production", "run-1": "rejected"}
    assert router(rig).canary is None and router(rig).stable.version == "v1"
    assert [k for k, _ in rig.alerts()] == ["rollout_started", "rollout_rolled_back"]
    assert (1, "prediction_divergence", "fail") in rig.analyses(rollout_id)


def test_failed_checks_add_up_to_max_failed_checks(sessions: sessionmaker[Session]) -> None:
    rig = Rig(sessions, FakeRouter(), max_failed_checks=2)
    rig.analysis.script = outcomes({5: [check("latency_ratio", Outcome.FAIL)]})
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    assert rig.walk(driver, rollout_id, 3) == ["progressing", "progressing", "rolling_back"]
    assert rig.rollout(rollout_id)["failed_checks"] == 2


def test_an_inconclusive_step_holds_then_pauses_past_its_deadline(rig: Rig) -> None:
    rig.analysis.script = outcomes({5: [check("prediction_divergence", Outcome.INCONCLUSIVE)]})
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    # Deadline: the step's 10 minutes plus step_deadline (1 h) after it started.
    phases = rig.walk(driver, rollout_id, 8)
    assert phases == ["progressing"] * 7 + ["paused"]
    state = rig.rollout(rollout_id)
    assert state["step"] == 0 and state["paused_from"] == "progressing" and state["active"]
    assert "without a verdict" in state["reason"]
    assert [k for k, _ in rig.alerts()] == ["rollout_started", "rollout_paused"]
    rig.walk(driver, rollout_id, 2)
    assert rig.rollout(rollout_id)["phase"] == "paused"  # stays until an operator acts
    assert router(rig).canary_percent == 5  # traffic stays as it was
    # Resumed, the step starts over with a new span.
    rig.analysis.script = outcomes({})
    assert driver.resume(rollout_id) == "progressing"
    assert rig.walk(driver, rollout_id, 1) == ["progressing"]
    assert rig.rollout(rollout_id)["step"] == 1


def test_stable_stragglers_at_the_full_step_hold_nothing(rig: Rig) -> None:
    """A few stable events in the 100% step's span (served across the switch) make its
    checks inconclusive with both versions present; the step still ends at its
    min_duration, and a check that fails there still counts."""
    stragglers = [
        check("sample_ratio", Outcome.INCONCLUSIVE, n_canary=5000, n_stable=3),
        check("prediction_divergence", Outcome.INCONCLUSIVE, n_canary=5000, n_stable=3),
        check("latency_p95_ratio", Outcome.INCONCLUSIVE, n_canary=5000, n_stable=3),
    ]
    rig.analysis.script = outcomes({100: stragglers})
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    assert rig.walk(driver, rollout_id, 6)[-2:] == ["promoting", "promoted"]


def test_the_same_checks_below_the_full_step_hold_it(rig: Rig) -> None:
    """Below 100% the stable events are a split: the inconclusive checks hold the step."""
    few = [
        check("sample_ratio", Outcome.INCONCLUSIVE, n_canary=5000, n_stable=3),
        check("prediction_divergence", Outcome.INCONCLUSIVE, n_canary=5000, n_stable=3),
    ]
    rig.analysis.script = outcomes({50: few})
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    assert rig.walk(driver, rollout_id, 5)[-1] == "progressing"
    assert rig.rollout(rollout_id)["step"] == 2


def test_labelled_performance_must_pass_on_the_last_step_stable_still_serves(rig: Rig) -> None:
    no_labels = check("accuracy_noninferiority", Outcome.INCONCLUSIVE, n_canary=3)
    rig.analysis.script = lambda span: [check("sample_ratio", Outcome.PASS), no_labels]
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    rig.walk(driver, rollout_id, 5)
    state = rig.rollout(rollout_id)
    # Labels lag: not awaited at 5% and 25%; at 50%, the last step with stable
    # traffic, the rollout waits for them.
    assert (state["phase"], state["step"]) == ("progressing", 2)
    labelled = check("accuracy_noninferiority", Outcome.PASS)
    rig.analysis.script = lambda span: [check("sample_ratio", Outcome.PASS), labelled]
    rig.walk(driver, rollout_id, 1)
    assert rig.rollout(rollout_id)["step"] == 3
    # At 100% stable serves nothing: what compares the versions cannot apply, and the
    # step soaks under the sample-ratio check alone.
    rig.analysis.script = lambda span: [
        check("sample_ratio", Outcome.PASS, n_stable=0),
        check("prediction_divergence", Outcome.INCONCLUSIVE, n_stable=0),
        check("accuracy_noninferiority", Outcome.INCONCLUSIVE, n_stable=0),
    ]
    assert rig.walk(driver, rollout_id, 2) == ["promoting", "promoted"]


def test_a_sample_ratio_mismatch_pauses_with_an_alert(rig: Rig) -> None:
    rig.analysis.script = outcomes(
        {25: [check("sample_ratio", Outcome.FAIL), check("accuracy_noninferiority", Outcome.FAIL)]}
    )
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    assert rig.walk(driver, rollout_id, 3) == ["progressing", "progressing", "paused"]
    state = rig.rollout(rollout_id)
    assert "sample ratio mismatch" in state["reason"]
    assert state["failed_checks"] == 0  # nothing else is judged on a broken split
    assert rig.stages()["run-1"] == "canary"
    assert [k for k, _ in rig.alerts()] == ["rollout_started", "rollout_paused"]


def test_a_retriable_router_error_is_retried_a_fatal_one_pauses(rig: Rig) -> None:
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    router(rig).fail_next(retriable=True)
    assert driver.tick() == {rollout_id: "progressing"}  # committed; its call failed
    assert router(rig).canary is None
    with transaction(rig.sessions) as s:
        row = RolloutRepository(s).get(rollout_id)
        assert row is not None and row.router_errors == 1
    assert driver.tick() == {rollout_id: "progressing"}  # the held step states it again
    assert router(rig).canary_percent == 5
    router(rig).fail_next(retriable=False, message="route not found")
    rig.clock.advance(minutes=10)
    assert driver.tick() == {rollout_id: "paused"}
    state = rig.rollout(rollout_id)
    assert state["reason"] == "router error: route not found"
    assert state["paused_from"] == "progressing"
    assert [k for k, _ in rig.alerts()] == ["rollout_started", "rollout_paused"]


def test_a_fatal_router_error_while_promoting_pauses_and_resumes_promoting(rig: Rig) -> None:
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    rig.walk(driver, rollout_id, 5)
    assert rig.rollout(rollout_id)["phase"] == "promoting"
    router(rig).fail_next(retriable=False)
    assert driver.tick() == {rollout_id: "paused"}
    assert rig.stages()["run-1"] == "canary"
    assert driver.resume(rollout_id) == "promoting"
    assert driver.tick() == {rollout_id: "promoted"}
    assert rig.stages() == {"v1": "archived", "run-1": "production"}


def test_abort_rolls_back(rig: Rig) -> None:
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    rig.walk(driver, rollout_id, 2)
    assert driver.abort(rollout_id, "operator said so") == "rolling_back"
    assert router(rig).canary is None  # the rollback call followed the commit
    assert driver.tick() == {rollout_id: "rolled_back"}
    assert rig.rollout(rollout_id)["reason"] == "aborted: operator said so"
    assert rig.stages() == {"v1": "production", "run-1": "rejected"}
    with pytest.raises(RolloutRefused):
        driver.abort(rollout_id, "again")


def test_one_active_rollout_per_model(rig: Rig) -> None:
    driver = rig.driver()
    driver.start("fraud", rig.run_id)
    second = rig.accepted_run("run-2")
    with pytest.raises(RolloutRefused, match="active rollout"):
        driver.start("fraud", second)
    assert rig.stages()["run-2"] == "candidate"  # the refusal changed nothing
    with pytest.raises(RolloutRefused, match="no candidate awaiting"):
        driver.start("fraud", rig.run_id)  # its candidate is the canary already


def test_no_rollout_without_a_production_version(rig: Rig) -> None:
    from db.registry import RegistryRepository, Stage

    with transaction(rig.sessions) as s:
        registry = RegistryRepository(s)
        v1 = registry.get("fraud", "v1")
        assert v1 is not None
        registry.set_stage(v1, Stage.ARCHIVED, rig.clock())
    with pytest.raises(RolloutRefused, match="no production version"):
        rig.driver().start("fraud", rig.run_id)


def test_a_step_is_judged_from_when_its_split_was_applied(rig: Rig) -> None:
    driver = rig.driver()
    driver.start("fraud", rig.run_id)
    router(rig).fail_next(retriable=True)
    driver.tick()  # step 1 committed; its split not applied
    rig.clock.advance(minutes=30)
    driver.tick()
    assert rig.analysis.spans == []  # nothing served at 5% yet: nothing to judge
    applied = rig.clock.now
    rig.clock.advance(minutes=10)
    driver.tick()
    assert [(s.start, s.end) for s in rig.analysis.spans] == [(applied, rig.clock.now)]


def test_a_split_never_applied_pauses_at_the_steps_deadline(rig: Rig) -> None:
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    for _ in range(8):
        router(rig).fail_next(retriable=True)
        rig.walk(driver, rollout_id, 1)
    state = rig.rollout(rollout_id)
    assert state["phase"] == "paused"
    assert "waiting for the router to apply the split" in state["reason"]
    assert rig.analysis.spans == []


def test_a_rollout_paused_while_rolling_back_is_not_promoted_by_hand(rig: Rig) -> None:
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    rig.walk(driver, rollout_id, 2)
    router(rig).fail_next(retriable=False, message="deployment not found")
    assert driver.abort(rollout_id, "bad canary") == "paused"
    with pytest.raises(RolloutRefused, match="paused while rolling back"):
        driver.promote(rollout_id, "ship it anyway")
    assert rig.rollout(rollout_id)["phase"] == "paused"
    assert driver.resume(rollout_id) == "rolling_back"
    assert driver.tick() == {rollout_id: "rolled_back"}
    assert rig.stages() == {"v1": "production", "run-1": "rejected"}


def test_a_rollout_whose_step_keeps_failing_holds_back_no_other_models(rig: Rig) -> None:
    sessions = rig.sessions
    with transaction(sessions) as s:  # model aml: production v1 and an accepted run-1
        registry, runs = RegistryRepository(s), RunRepository(s)
        registry.register("aml", "v1", "file:///m/aml-v1.skops", "c" * 64, Stage.PRODUCTION, T0)
        run = runs.start("aml", "request", "test", T0, T0, "accepted", T0)
        assert run is not None
        candidate = registry.register(
            "aml", "run-1", "file:///m/aml-run-1.skops", "d" * 64, Stage.CANDIDATE, T0,
            run_id=run.id,
        )  # fmt: skip
        run.candidate_version_id = candidate.id
        runs.enter(run, "accepted", "test", T0, final=True)
        aml_run = run.id

    def script(span: Span) -> list[Check]:
        if span.model == "aml":
            raise KeyError("amount")  # a bug aml's data sets off, at every analysis
        return healthy(span)

    rig.analysis.script = script
    fleet = Fleet(
        {"aml": FakeRouter(), "fraud": rig.router},
        {"aml": replace(rig.settings, model="aml"), "fraud": rig.settings},
        rig.analysis,
        rig.clock,
    )
    driver = RolloutDriver(sessions, fleet)
    broken, fine = driver.start("aml", aml_run), driver.start("fraud", rig.run_id)
    failed = 0
    for _ in range(4):
        rig.clock.advance(minutes=10)
        try:
            driver.tick()
        except KeyError:
            failed += 1  # still raised, for the scheduler to count and log
    assert failed == 3  # every tick that judged aml's step
    assert (rig.rollout(broken)["step"], rig.rollout(fine)["step"]) == (0, 3)


def test_a_router_that_never_finishes_promoting_pauses_at_the_deadline(rig: Rig) -> None:
    # The router takes the promotion and never reports it done: the rollout, the model's
    # only active one, pauses with an alert after step_deadline (1 h) instead of waiting
    # unseen for ever; resumed, it gets a new deadline, and is promoted once done.
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    rig.walk(driver, rollout_id, 4)
    router(rig).hold(1000)
    assert rig.walk(driver, rollout_id, 7) == ["promoting"] * 6 + ["paused"]
    state = rig.rollout(rollout_id)
    assert state["paused_from"] == "promoting" and state["active"]
    assert state["reason"].startswith("the router did not promote by its deadline")
    assert [k for k, _ in rig.alerts()] == ["rollout_started", "rollout_paused"]
    assert driver.resume(rollout_id) == "promoting"
    assert rig.walk(driver, rollout_id, 1) == ["promoting"]  # a new deadline
    router(rig).hold(0)
    assert rig.walk(driver, rollout_id, 1) == ["promoted"]


def test_retriable_router_errors_pause_a_rolling_back_rollout_at_the_deadline(rig: Rig) -> None:
    rig.analysis.script = outcomes({5: [check("prediction_divergence", Outcome.FAIL)]})
    driver = rig.driver()
    rollout_id = driver.start("fraud", rig.run_id)
    assert rig.walk(driver, rollout_id, 2) == ["progressing", "rolling_back"]
    phases = []
    for _ in range(6):  # ten minutes apart: the sixth comes an hour after the rollback
        router(rig).fail_next(retriable=True)
        phases += rig.walk(driver, rollout_id, 1)
    assert phases == ["rolling_back"] * 5 + ["paused"]
    state = rig.rollout(rollout_id)
    assert state["paused_from"] == "rolling_back" and "after 6 tries" in state["reason"]
    assert "router error past the deadline" in state["reason"]
    assert driver.resume(rollout_id) == "rolling_back"
    assert rig.walk(driver, rollout_id, 1) == ["rolled_back"]
