"""The closed loop (issue 10's acceptance): real Kafka and PostgreSQL, ``driftwatch run`` as a
subprocess, the local executor and the reference trainer, the real-model scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.closed_loop import run_closed_loop
from tests.harness.kafka import TestKafka

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_drift_fires_one_run_that_trains_on_post_drift_data_and_is_accepted(
    kafka: TestKafka, pg_url: str, topic: str, tmp_path: Path
) -> None:
    result = run_closed_loop(kafka, tmp_path, pg_url, topic)
    assert len(result.fired) == 1, result.decisions
    assert len(result.runs) == 1, result.log[-3000:]
    run, decision = result.runs[0], result.fired[0]
    assert (run.phase, run.verdict) == ("accepted", "accepted"), run.failure_reason
    # The run links to its decision and the decision to the reports and alarms behind it.
    assert decision.run_id == run.id
    assert decision.cause_kind in ("degradation", "concept_alarm")
    assert decision.performance_report_id is not None or decision.concept_alarm_id is not None
    # It trained on archived post-drift rows only: its data starts at or after the drift point.
    assert run.data_from >= result.drift_point
    assert run.data_rows is not None and run.data_rows >= 5000
    # The champion lost at least 10 points at the drift point; the candidate wins them back.
    assert result.pre - result.post >= 0.10
    assert result.candidate is not None
    assert result.candidate >= 0.98 * result.pre
    assert all(g.passed for g in result.gates)
    # Every later cause is suppressed, with why.
    assert all(
        d.decision == "suppressed" and d.reason for d in result.decisions if d is not decision
    )
