"""The closed loop of issue 10 with ``retrain.executor: kubernetes``: the service talks to
the emulator over HTTP, whose kubelet runs the reference trainer for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.harness.closed_loop import run_closed_loop
from tests.harness.k8s.cluster import NAMESPACE, cluster, job_template, write_kubeconfig
from tests.harness.kafka import TestKafka

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]


def test_the_closed_loop_runs_its_jobs_on_kubernetes(
    kafka: TestKafka, pg_url: str, topic: str, tmp_path: Path
) -> None:
    import yaml

    with cluster(tmp_path) as (emulator, kubelet):
        assert kubelet is not None
        template = tmp_path / "job.yaml"
        template.write_text(
            yaml.safe_dump(job_template([sys.executable, "-m", "retrain.trainer"])),
            encoding="utf-8",
        )
        retrain = {
            "executor": "kubernetes",
            "kubernetes": {
                "namespace": NAMESPACE,
                "template": str(template),
                "kubeconfig": str(write_kubeconfig(tmp_path / "kubeconfig", emulator.url)),
            },
        }
        # The executor is what this test is about: the rollout is test_retrain_closed_loop's.
        result = run_closed_loop(kafka, tmp_path, pg_url, topic, retrain=retrain, roll_out=False)
        jobs = sorted(
            j["metadata"]["name"] for j in emulator.store.list("jobs", NAMESPACE, None)[0]
        )
    assert len(result.runs) == 1, result.log[-3000:]
    run = result.runs[0]
    assert (run.phase, run.verdict) == ("accepted", "accepted"), run.failure_reason
    assert jobs == [f"driftwatch-fraud-{run.id}-train", f"driftwatch-fraud-{run.id}-validate"]
    assert emulator.count("create", "jobs", 201) == 2 and kubelet.pods_started == 2
    assert result.candidate is not None and result.candidate >= 0.98 * result.pre
    assert all(g.passed for g in result.gates)
    assert result.rollout is None
