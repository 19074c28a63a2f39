"""The closed loop (issues 10 and 19): real Kafka and PostgreSQL, ``driftwatch run`` as a
subprocess, the local executor and the reference trainer, on both real-model scenarios with
the same config: ``concept`` (a linear champion; the inputs shift and the concept changes) and
``interaction`` (a gradient-boosting champion; pure concept drift to a feature interaction
no linear model learns)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.closed_loop import run_closed_loop
from tests.harness.kafka import TestKafka

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.mark.parametrize("scenario", ["concept", "interaction"])
def test_drift_fires_one_run_that_trains_on_the_changed_world_and_is_accepted(
    kafka: TestKafka, pg_url: str, topic: str, tmp_path: Path, scenario: str
) -> None:
    result = run_closed_loop(kafka, tmp_path, pg_url, topic, scenario)
    assert len(result.fired) == 1, result.decisions
    assert len(result.runs) == 1, result.log[-3000:]
    run, decision = result.runs[0], result.fired[0]
    # The run links to its decision and the decision to the reports and alarms behind it.
    assert decision.run_id == run.id
    assert run.trigger == decision.cause_kind
    assert decision.cause_kind in ("degradation", "concept_alarm")
    assert decision.performance_report_id is not None or decision.concept_alarm_id is not None
    assert not run.active and run.finished_at is not None, run.phase
    assert (run.phase, run.verdict) == ("accepted", "accepted"), run.failure_reason
    # The data window is an hour, but the run trains on the changed world only: its data
    # starts at or after the drift point.
    assert run.data_from >= result.drift_point
    assert run.data_rows is not None and run.data_rows >= 5000
    # The champion lost at least 10 points at the drift point; the candidate wins them back,
    # on fresh post-drift rows drawn after the run.
    assert result.pre - result.post >= 0.10
    assert result.candidate is not None, result.candidate_error
    assert result.candidate >= 0.98 * result.pre
    assert all(g.passed for g in result.gates)
    # Every later cause is suppressed, with why.
    assert all(
        d.decision == "suppressed" and d.reason for d in result.decisions if d is not decision
    )
