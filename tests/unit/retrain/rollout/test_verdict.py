"""How the checks of a span fold into the verdict an external controller reads."""

from __future__ import annotations

from drift.canary import Outcome
from retrain.rollout.verdict import judge
from tests.unit.retrain.rollout.rollout_support import check

PASS, FAIL, WAIT = Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE


def test_any_failed_check_fails_whatever_else_holds() -> None:
    checks = [
        check("sample_ratio", PASS),
        check("prediction_divergence", FAIL, reason="0.3 > 0.1"),
        check("accuracy_noninferiority", WAIT),
    ]
    verdict = judge(checks, labels=True, percent=25)
    assert verdict.outcome is FAIL
    assert verdict.reason == "failed: prediction_divergence: 0.3 > 0.1"
    assert verdict.checks == tuple(checks)


def test_an_inconclusive_check_with_events_of_both_versions_holds() -> None:
    checks = [check("sample_ratio", PASS), check("prediction_divergence", WAIT, reason="few")]
    verdict = judge(checks, labels=False, percent=25)
    assert (verdict.outcome, verdict.reason) == (WAIT, "inconclusive: prediction_divergence: few")


def test_a_check_without_events_of_one_version_is_left_out() -> None:
    # At 100 % stable serves nothing: divergence cannot apply, the split still can.
    checks = [check("sample_ratio", PASS), check("prediction_divergence", WAIT, n_stable=0)]
    assert judge(checks, labels=False, percent=100).outcome is PASS


def test_missing_labels_hold_below_100_percent_only_for_a_model_with_labels() -> None:
    checks = [
        check("sample_ratio", PASS),
        check("accuracy_noninferiority", WAIT, n_canary=0, n_stable=0),
    ]
    assert judge(checks, labels=True, percent=25).outcome is WAIT
    assert judge(checks, labels=True, percent=None).outcome is WAIT
    assert judge(checks, labels=True, percent=100).outcome is PASS
    assert judge(checks, labels=False, percent=25).outcome is PASS


def test_nothing_measured_is_inconclusive_never_a_pass() -> None:
    checks = [check(name, WAIT, 0, 0, "no events") for name in ("sample_ratio", "divergence")]
    verdict = judge(checks, labels=False, percent=25)
    assert verdict.outcome is WAIT
    assert verdict.reason.startswith("inconclusive: nothing measured (sample_ratio: no events")
    assert judge([], labels=False, percent=None).outcome is WAIT
