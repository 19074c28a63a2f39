"""The API over HTTP: auth and scopes, errors as JSON, reads, and the idempotent retrain."""

from __future__ import annotations

import threading
from dataclasses import replace

import httpx

from db.runs import RunRepository
from db.session import transaction
from tests.unit.service.api.conftest import BOTH, READ, WRITE, Api, served


def test_write_routes_refuse_missing_unknown_and_read_only_tokens(api: Api) -> None:
    path = "/v1/models/fraud/retrain"
    with api.client() as anonymous:
        r = anonymous.post(path, json={"reason": "x"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "bearer token is required" in r.json()["message"]
    with api.client("not-a-token") as stranger:
        r = stranger.post(path, json={"reason": "x"})
        assert r.status_code == 401 and r.json() == {"message": "the bearer token is not known"}
    with api.client(READ) as reader:
        r = reader.post(path, json={"reason": "x"})
        assert r.status_code == 403
        assert r.json() == {"message": "the token 'reader' lacks the write scope"}
    with api.client(WRITE) as writer:
        assert writer.get("/v1/models").status_code == 403
    with transaction(api.sessions) as s:
        assert RunRepository(s).runs() == []


def test_retrain_twice_with_one_key_starts_one_run_and_replays_the_answer(api: Api) -> None:
    headers = {"Idempotency-Key": "deploy-42"}
    path = "/v1/models/fraud/retrain"
    with api.client(WRITE) as writer:
        first = writer.post(path, json={"reason": "new data"}, headers=headers)
        again = writer.post(path, json={"reason": "new data"}, headers=headers)
        other = writer.post(path, json={"reason": "other"}, headers=headers)
    assert first.status_code == 202
    assert first.json() == {"run_id": 1, "model": "fraud", "reason": "new data"}
    assert (again.status_code, again.json()) == (202, first.json())
    assert other.status_code == 422
    assert "used before for a different request" in other.json()["message"]
    with transaction(api.sessions) as s:
        assert [r.id for r in RunRepository(s).runs()] == [1]


def test_a_key_given_twice_is_refused_and_starts_nothing(api: Api) -> None:
    twice = [("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    with api.client(WRITE) as writer:
        r = writer.post("/v1/models/fraud/retrain", json={"reason": "x"}, headers=twice)
    assert r.status_code == 422, r.text
    problem = "was given more than once"
    assert r.json() == {
        "message": f"Idempotency-Key {problem}",
        "problems": [{"location": "header.Idempotency-Key", "problem": problem}],
    }
    with transaction(api.sessions) as s:
        assert RunRepository(s).runs() == []


def test_concurrent_repeats_of_one_key_start_one_run(api: Api) -> None:
    answers: list[httpx.Response] = []

    def call() -> None:
        with api.client(BOTH) as c:
            answers.append(c.post("/v1/models/fraud/retrain", headers={"Idempotency-Key": "same"}))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [202] * 4
    assert {a.json()["run_id"] for a in answers} == {1}
    with transaction(api.sessions) as s:
        assert len(RunRepository(s).runs()) == 1


def test_retrain_while_active_is_409_with_the_active_run(api: Api) -> None:
    with api.client(WRITE) as writer:
        assert writer.post("/v1/models/fraud/retrain").status_code == 202
        r = writer.post("/v1/models/fraud/retrain", json={"reason": "again"})
    assert r.status_code == 409
    assert r.json() == {"message": "fraud: run 1 is active; nothing started", "active_run_id": 1}


def test_unknown_model_is_404_with_a_message(api: Api) -> None:
    with api.client(BOTH) as c:
        r = c.post("/v1/models/nope/retrain", json={"reason": "x"})
        assert r.status_code == 404
        assert r.json() == {"message": "no model 'nope'; configured: ['churn', 'fraud']"}
        assert c.get("/v1/models/nope/drift").status_code == 404
        assert c.get("/v1/runs/99").json() == {"message": "no run 99"}
        assert c.get("/v1/reports/7").json() == {"message": "no drift report with id 7"}
        assert c.get("/v1/reports/7/html").status_code == 404


def test_invalid_input_and_oversized_bodies_get_json_errors(api: Api) -> None:
    with api.client(BOTH) as c:
        r = c.get("/v1/models/fraud/drift", params={"from": "yesterday"})
        assert r.status_code == 422
        assert r.json()["message"].startswith("query.from: ")
        r = c.get("/v1/models/fraud/drift", params={"to": "2026-11-27T10:00:00"})
        assert r.status_code == 422, r.text
        assert r.json()["message"] == "query.to: Input should have timezone info"
        # Valid times whose UTC Python cannot hold: a 422, not the database's error.
        for param, value in (
            ("from", "0001-01-01T00:00:00+14:00"),
            ("to", "9999-12-31T23:59:59-14:00"),
        ):
            for page in ("drift", "performance"):
                r = c.get(f"/v1/models/fraud/{page}", params={param: value})
                assert r.status_code == 422, r.text
                assert r.json()["message"] == (
                    f"query.{param}: Value error, out of range once converted to UTC"
                )
        # A bare number is not taken for Unix seconds.
        r = c.get("/v1/models/fraud/drift", params={"to": "0.5"})
        assert r.status_code == 422, r.text
        assert r.json()["message"] == (
            "query.to: Value error, a time is written as ISO 8601 with its offset, "
            "e.g. 2026-11-27T10:00Z"
        )
        # An id has one spelling: "1_0" is not run 10, nor "1.0" or "+1" run 1.
        for spelled in ("1.0", "+1", "1_0", "01", "%201", "1e1"):
            r = c.get(f"/v1/runs/{spelled}")
            assert r.status_code == 422, (spelled, r.text)
            assert r.json()["message"] == (
                "path.run_id: Value error, an id is written in decimal digits, "
                "without sign or leading zero"
            )
        r = c.post("/v1/models/fraud/retrain", json={"reason": ""})
        assert r.status_code == 422 and r.json()["message"].startswith("body.reason: ")
        r = c.post("/v1/models/fraud/retrain", json={"reason": "x" * 2000})
        assert r.status_code == 413
        assert r.json() == {"message": "the request body is larger than 1024 bytes"}

        def chunks() -> object:
            for _ in range(40):
                yield b"x" * 100

        r = c.post(
            "/v1/models/fraud/retrain",
            content=chunks(),  # type: ignore[arg-type]
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        with transaction(api.sessions) as s:
            assert RunRepository(s).runs() == []


def test_models_runs_and_pages(api: Api) -> None:
    with api.client(BOTH) as c:
        assert c.post("/v1/models/fraud/retrain", json={"reason": "r1"}).status_code == 202
        page = c.get("/v1/models", params={"limit": 1}).json()
        assert [m["name"] for m in page["items"]] == ["churn"]
        assert page["next_offset"] == 1
        page = c.get("/v1/models", params={"limit": 1, "offset": 1}).json()
        assert [m["name"] for m in page["items"]] == ["fraud"] and page["next_offset"] is None
        detail = c.get("/v1/models/fraud").json()
        assert detail["active_run"]["id"] == 1 and detail["champion"] is None
        assert detail["labels"] is True
        assert c.get("/v1/models/churn").json()["labels"] is False
        runs = c.get("/v1/runs", params={"model": "fraud"}).json()
        assert [r["reason"] for r in runs["items"]] == ["r1"]
        run = c.get("/v1/runs/1").json()
        assert run["run"]["phase"] == "pending"
        assert [p["phase"] for p in run["history"]] == ["pending"]
        assert c.get("/v1/models/fraud/drift").json()["items"] == []


def test_probes_and_metrics_are_open_and_readiness_reports_the_consumer(api: Api) -> None:
    with api.client() as c:
        assert c.get("/healthz").json() == {"status": "ok", "problems": []}
        assert c.get("/readyz").status_code == 200
        api.consumer[0] = "consumer has no partitions assigned"
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json() == {
            "status": "not ready",
            "problems": ["consumer has no partitions assigned"],
        }
        assert c.get("/metrics").status_code == 200
        assert c.get("/openapi.json").json()["paths"].keys() >= {"/v1/models/{model}/retrain"}


def test_closed_metrics_need_a_read_token(api: Api) -> None:
    with served(replace(api.deps, metrics_open=False)) as url:
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert (
            httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {WRITE}"}).status_code
            == 403
        )
        r = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {READ}"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")


def test_an_unexpected_failure_is_a_json_500_without_a_trace(api: Api) -> None:
    def broken(report_id: int) -> str:
        raise RuntimeError(f"secret detail of report {report_id}")

    with served(replace(api.deps, render_html=broken)) as url:
        r = httpx.get(f"{url}/v1/reports/3/html", headers={"Authorization": f"Bearer {READ}"})
    assert r.status_code == 500
    assert r.json() == {"message": "internal error"}
    assert "secret" not in r.text and "Traceback" not in r.text
