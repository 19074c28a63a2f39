"""Rollouts over HTTP: list and show (read), start / pause / resume / promote / abort
(write, Idempotency-Key), on each database kind. A write records the transition with
its history row and alert; the router call is the leader's next tick (the ``file``
router's file shows when it is made)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import transaction
from tests.unit.retrain.rollout.analysis_support import Ingestion, Version, at, stream
from tests.unit.service.api.conftest import BOTH, READ, VERDICT, WRITE
from tests.unit.service.api.rollout_api_support import RolloutApi, rollout_api

STABLE, CANARY = Version("v1", 0.75), Version("v2", 0.25)


def z(seconds: float) -> str:
    """The stream time ``seconds`` as the API writes a UTC time."""
    return at(seconds).isoformat().replace("+00:00", "Z")


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[RolloutApi]:
    with rollout_api(db_url, tmp_path) as served:
        yield served


def started(api: RolloutApi) -> int:
    run_id = api.accepted_run("v2")
    with api.client(WRITE) as writer:
        r = writer.post("/v1/models/fraud/rollouts", json={"run_id": run_id})
    assert r.status_code == 202, r.text
    rollout_id: int = r.json()["rollout_id"]
    return rollout_id


def test_start_records_a_pending_rollout_and_the_leader_applies_its_first_step(
    api: RolloutApi,
) -> None:
    run_id = api.accepted_run("v2")
    with api.client(WRITE) as writer:
        r = writer.post("/v1/models/fraud/rollouts", json={"run_id": run_id})
        assert r.status_code == 202
        assert r.json() == {
            "rollout_id": 1,
            "model": "fraud",
            "phase": "pending",
            "message": "recorded; the leader's next rollout tick makes the router call it needs",
        }
        again = writer.post("/v1/models/fraud/rollouts", json={"run_id": run_id})
        assert again.status_code == 409
        assert again.json() == {
            "message": f"run {run_id} of fraud has no candidate awaiting a rollout (canary)"
        }
    assert api.stage("v2") == "canary" and api.alerts() == ["rollout_started"]
    assert api.split_file() is None  # nothing routed by the API
    api.tick()
    split = api.split_file()
    assert split is not None and split["canary_percent"] == 25
    assert split["canary"]["version"] == "v2"


def test_start_by_the_candidates_version_starts_its_runs_rollout(api: RolloutApi) -> None:
    run_id = api.accepted_run("v2")
    with api.client(WRITE) as writer:
        r = writer.post("/v1/models/fraud/rollouts", json={"candidate": "v2"})
    assert (r.status_code, r.json()["phase"]) == (202, "pending")
    with transaction(api.sessions) as s:
        (rollout,) = RolloutRepository(s).rollouts()
        assert rollout.run_id == run_id
    assert api.stage("v2") == "canary"


def test_a_runs_detail_has_its_data_its_job_logs_and_the_rollout_it_started(
    api: RolloutApi,
) -> None:
    run_id = api.accepted_run("v2")
    with transaction(api.sessions) as s:
        run = RunRepository(s).get(run_id)
        assert run is not None
        run.data_uri, run.data_rows = "s3://archive/runs/1/data.parquet", 5400
        run.change_onset, run.data_note = at(-600), "from the change onset"
        run.train_log_tail, run.validate_log_tail = "epoch 3 done\n", None
    with api.client(READ) as reader:
        before = reader.get(f"/v1/runs/{run_id}").json()
    assert before["rollout_ids"] == []
    with api.client(WRITE) as writer:
        r = writer.post("/v1/models/fraud/rollouts", json={"run_id": run_id})
    rollout_id = r.json()["rollout_id"]
    with api.client(READ) as reader:
        detail = reader.get(f"/v1/runs/{run_id}").json()
    assert detail["rollout_ids"] == [rollout_id]
    assert (detail["data_uri"], detail["data_rows"]) == ("s3://archive/runs/1/data.parquet", 5400)
    assert (detail["change_onset"], detail["data_note"]) == (z(-600), "from the change onset")
    assert (detail["train_log_tail"], detail["validate_log_tail"]) == ("epoch 3 done\n", None)


def test_list_filters_by_model_and_activity_and_show_has_weights_and_analyses(
    api: RolloutApi, db_url: str
) -> None:
    rollout_id = started(api)
    api.tick()  # step 1 at 25%, applied at at(0)
    ingestion = Ingestion(api.sessions)
    ingestion.add(stream(np.random.default_rng(1), (STABLE, CANARY), 8000, 0, 600))
    api.clock.now = at(600)
    api.tick()  # step 1 judged on [0, 600): every check passes; step 2 at 100%
    with api.client(READ) as reader:
        listed = reader.get("/v1/rollouts").json()
        assert [r["id"] for r in listed["items"]] == [rollout_id]
        assert listed["items"][0]["phase"] == "progressing"
        assert listed["items"][0]["canary_percent"] == 100
        assert reader.get("/v1/rollouts", params={"model": "churn"}).json()["items"] == []
        assert reader.get("/v1/rollouts", params={"active": "false"}).json()["items"] == []
        assert len(reader.get("/v1/rollouts", params={"active": "true"}).json()["items"]) == 1
        shown = reader.get(f"/v1/rollouts/{rollout_id}").json()
        assert reader.get("/v1/rollouts/99").json() == {"message": "no rollout 99"}
    assert (shown["stable"], shown["canary"], shown["step"]) == ("v1", "v2", 2)
    assert shown["weights"] == [
        {"step": 1, "canary_percent": 25, "at": z(0)},
        {"step": 2, "canary_percent": 100, "at": z(600)},
    ]
    assert [p["phase"] for p in shown["history"]] == ["pending", "progressing", "progressing"]
    (step,) = shown["analyses"]
    assert step["step"] == 1
    checks = {c["check"]: c for c in step["checks"]}
    assert set(checks) == {
        "sample_ratio",
        "prediction_divergence",
        "accuracy_noninferiority",
        "latency_p95_ratio",
    }
    assert all(c["outcome"] == "pass" for c in checks.values())
    split = checks["sample_ratio"]
    assert split["n_canary"] + split["n_stable"] == 8000
    assert split["threshold"] == 0.001 and split["value"] > 0.001
    assert checks["prediction_divergence"]["threshold"] == 0.1
    assert (split["span_start"], split["span_end"]) == (z(0), z(600))
    assert checks["accuracy_noninferiority"]["reason"]


def test_pause_resume_promote_commit_with_history_and_alerts_and_leave_the_router_to_the_leader(
    api: RolloutApi,
) -> None:
    rollout_id = started(api)
    api.tick()
    at_step_1 = api.split_file()
    with api.client(WRITE) as writer:
        r = writer.post(f"/v1/rollouts/{rollout_id}/pause", json={"reason": "look at it"})
        assert (r.status_code, r.json()["phase"]) == (202, "paused")
        again = writer.post(f"/v1/rollouts/{rollout_id}/pause")
        assert again.status_code == 409
        assert again.json() == {"message": f"rollout {rollout_id} is paused: nothing to pause"}
        r = writer.post(f"/v1/rollouts/{rollout_id}/resume")
        assert (r.status_code, r.json()["phase"]) == (202, "progressing")
        assert writer.post(f"/v1/rollouts/{rollout_id}/resume").status_code == 409
        r = writer.post(f"/v1/rollouts/{rollout_id}/promote", json={"reason": "looks fine"})
        assert (r.status_code, r.json()["phase"]) == (202, "promoting")
    assert api.alerts() == ["rollout_started", "rollout_paused"]
    with transaction(api.sessions) as s:
        rollout = RolloutRepository(s).get(rollout_id)
        assert rollout is not None and rollout.reason == "looks fine"
        notes = [(p.phase, p.note) for p in RolloutRepository(s).history(rollout_id)]
    assert notes[-3:] == [
        ("paused", "look at it"),
        ("progressing", "step 1 of 2: v2 at 25%"),
        ("promoting", "promoted by hand at step 1 (25%): looks fine; promoting v2"),
    ]
    assert api.split_file() == at_step_1  # the API made no router call
    api.tick()
    assert api.phase(rollout_id) == "promoted"
    assert api.stage("v2") == "production" and api.stage("v1") == "archived"
    split = api.split_file()
    assert split is not None and split["stable"]["version"] == "v2" and split["canary"] is None
    assert api.alerts()[-1] == "rollout_promoted"
    with api.client(WRITE) as writer:
        r = writer.post(f"/v1/rollouts/{rollout_id}/abort")
    assert r.status_code == 409
    assert r.json() == {"message": f"rollout {rollout_id} is promoted: nothing to abort"}


def test_abort_rolls_back_on_the_leaders_tick_and_rejects_the_candidate(api: RolloutApi) -> None:
    rollout_id = started(api)
    api.tick()
    with api.client(WRITE) as writer:
        r = writer.post(f"/v1/rollouts/{rollout_id}/abort", json={"reason": "bad idea"})
    assert (r.status_code, r.json()["phase"]) == (202, "rolling_back")
    split = api.split_file()
    assert split is not None and split["canary_percent"] == 25  # still, until the tick
    api.tick()
    assert api.phase(rollout_id) == "rolled_back" and api.stage("v2") == "rejected"
    split = api.split_file()
    assert split is not None and split["canary"] is None
    assert split["stable"]["version"] == "v1"
    assert api.alerts() == ["rollout_started", "rollout_rolled_back"]


def test_one_idempotency_key_replays_its_answer_and_refuses_another_request(
    api: RolloutApi,
) -> None:
    run_id = api.accepted_run("v2")
    start = "/v1/models/fraud/rollouts"
    with api.client(WRITE, **{"Idempotency-Key": "start-1"}) as writer:
        first = writer.post(start, json={"run_id": run_id})
        again = writer.post(start, json={"run_id": run_id})
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json() == first.json()
        other = writer.post(start, json={"run_id": run_id + 1})
    assert other.status_code == 422
    reused = "was used before for a different request"
    assert other.json() == {
        "message": f"Idempotency-Key {reused}",
        "problems": [{"location": "header.Idempotency-Key", "problem": reused}],
    }
    rollout_id = first.json()["rollout_id"]
    pause = f"/v1/rollouts/{rollout_id}/pause"
    with api.client(WRITE, **{"Idempotency-Key": "pause-1"}) as writer:
        assert writer.post(pause, json={"reason": "x"}).status_code == 202
        # The repeat replays 202: a second pause would have been a 409.
        assert writer.post(pause, json={"reason": "x"}).json()["phase"] == "paused"
        assert writer.post(pause, json={"reason": "y"}).status_code == 422
    with transaction(api.sessions) as s:
        assert len(RolloutRepository(s).rollouts()) == 1
        phases = [p.phase for p in RolloutRepository(s).history(rollout_id)]
    assert phases == ["pending", "paused"]


def test_refusals_are_4xx_with_a_message(api: RolloutApi) -> None:
    with api.client(BOTH) as c:
        r = c.post("/v1/models/nope/rollouts", json={"run_id": 1})
        assert r.status_code == 404
        assert r.json() == {"message": "no model 'nope'; configured: ['churn', 'fraud']"}
        r = c.post("/v1/models/fraud/rollouts", json={"run_id": 7})
        assert (r.status_code, r.json()) == (404, {"message": "model fraud has no run 7"})
        r = c.post("/v1/models/fraud/rollouts", json={})
        assert r.status_code == 422
        assert r.json()["message"] == "body: Value error, give exactly one of run_id and candidate"
        r = c.post("/v1/models/fraud/rollouts", json={"candidate": "v9"})
        assert (r.status_code, r.json()) == (404, {"message": "model fraud has no version 'v9'"})
        r = c.post("/v1/models/fraud/rollouts", json={"candidate": "v1"})
        assert (r.status_code, r.json()) == (409, {"message": "version 'v1' of fraud has no run"})
        for action in ("pause", "resume", "promote", "abort"):
            r = c.post(f"/v1/rollouts/5/{action}")
            assert (r.status_code, r.json()) == (404, {"message": "no rollout 5"})
        run_id = api.accepted_run("v2")
        assert c.post("/v1/models/fraud/rollouts", json={"run_id": run_id}).status_code == 202
        other = api.accepted_run("v3")
        r = c.post("/v1/rollouts/1/promote")
        assert r.status_code == 409
        assert "only a progressing or paused rollout can be promoted" in r.json()["message"]
        r = c.post("/v1/models/fraud/rollouts", json={"run_id": other})
        assert (r.status_code, r.json()) == (
            409,
            {"message": "model fraud has an active rollout already"},
        )


def test_scopes_keep_reads_writes_and_verdicts_apart(api: RolloutApi) -> None:
    rollout_id = started(api)
    with api.client(READ) as reader:
        assert reader.get("/v1/rollouts").status_code == 200
        r = reader.post(f"/v1/rollouts/{rollout_id}/pause")
        assert (r.status_code, r.json()) == (
            403,
            {"message": "the token 'reader' lacks the write scope"},
        )
        assert reader.get(f"/v1/rollouts/{rollout_id}/verdict").status_code == 403
    with api.client(WRITE) as writer:
        assert writer.get(f"/v1/rollouts/{rollout_id}").status_code == 403
        assert writer.get("/v1/models/fraud/verdict").status_code == 403
    with api.client(VERDICT) as controller:
        r = controller.get("/v1/rollouts")
        assert (r.status_code, r.json()) == (
            403,
            {"message": "the token 'controller' lacks the read scope"},
        )
        assert controller.post(f"/v1/rollouts/{rollout_id}/abort").status_code == 403
        assert controller.post("/v1/models/fraud/retrain").status_code == 403
        assert controller.get(f"/v1/rollouts/{rollout_id}/verdict").status_code == 200
    with api.client() as anonymous:
        assert anonymous.get(f"/v1/rollouts/{rollout_id}/verdict").status_code == 401
        assert anonymous.get("/v1/rollouts").status_code == 401
    assert api.phase(rollout_id) == "pending"


def test_a_rollout_starts_on_demand_for_a_model_that_does_not_roll_out_by_itself(
    db_url: str, tmp_path: Path
) -> None:
    with rollout_api(db_url, tmp_path, enabled=False) as api:
        run_id = api.accepted_run("v2")
        assert api.stage("v2") == "candidate"  # the verdict started nothing
        with api.client(WRITE) as writer:
            r = writer.post("/v1/models/fraud/rollouts", json={"run_id": run_id})
        assert r.status_code == 202, r.text
        assert api.stage("v2") == "canary"
        api.tick()
        assert api.phase(r.json()["rollout_id"]) == "progressing"


def test_the_openapi_document_describes_the_rollout_and_verdict_routes(api: RolloutApi) -> None:
    with api.client() as anonymous:
        document = anonymous.get("/openapi.json").json()
    paths = document["paths"]
    assert {
        "/v1/rollouts": {"get"},
        "/v1/rollouts/{rollout_id}": {"get"},
        "/v1/models/{model}/rollouts": {"post"},
        "/v1/rollouts/{rollout_id}/pause": {"post"},
        "/v1/rollouts/{rollout_id}/resume": {"post"},
        "/v1/rollouts/{rollout_id}/promote": {"post"},
        "/v1/rollouts/{rollout_id}/abort": {"post"},
        "/v1/rollouts/{rollout_id}/verdict": {"get"},
        "/v1/models/{model}/verdict": {"get"},
        "/v1/flagger/verdict": {"post"},
    }.items() <= {path: set(ops) for path, ops in paths.items()}.items()
    start = paths["/v1/models/{model}/rollouts"]["post"]
    assert {p["name"] for p in start["parameters"]} == {"model", "Idempotency-Key"}
    flagger = paths["/v1/flagger/verdict"]["post"]
    assert {"200", "412"} <= set(flagger["responses"])
    verdict = document["components"]["schemas"]["VerdictBody"]["properties"]["verdict"]
    assert verdict["enum"] == ["pass", "fail", "inconclusive"]
