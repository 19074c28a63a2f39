"""The canary verdict for Argo Rollouts and Flagger, called as each controller calls it,
with the example manifests in deploy/: the real analysis on streams stored as ingestion
stores them, a healthy canary passes, a shifted one fails, one without events yet is
inconclusive, and each controller reads the three apart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.unit.retrain.rollout.analysis_support import Ingestion, Version, at, stream
from tests.unit.service.api.conftest import BOTH, READ, VERDICT
from tests.unit.service.api.rollout_api_support import RolloutApi, rollout_api

DEPLOY = Path(__file__).resolve().parents[4] / "deploy"
SERVICE = "http://driftwatch.driftwatch.svc:8080"
# The manifests' version names.
STABLE, HEALTHY = Version("v12", 0.75), Version("v13", 0.25)
SHIFTED = replace(HEALTHY, shift=0.15)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[RolloutApi]:
    with rollout_api(db_url, tmp_path) as served:
        yield served


def serve_canary(api: RolloutApi, canary: Version) -> None:
    """Ten minutes of the two versions' events; the clock at their end."""
    Ingestion(api.sessions).add(stream(np.random.default_rng(1), (STABLE, canary), 8000, 0, 600))
    api.clock.now = at(600)


# --- Argo Rollouts: the web metric of deploy/argo-rollouts/analysis-template.yaml ---


def argo_measure(api: RolloutApi) -> tuple[str, Any]:
    """One measurement as Argo's web provider takes it: the template's args filled in
    from the Rollout's first analysis step and the Secret, its request made, its
    jsonPath applied and its conditions evaluated. The phase and the value."""
    (template,) = documents(DEPLOY / "argo-rollouts" / "analysis-template.yaml")
    (secret,) = documents(DEPLOY / "argo-rollouts" / "secret.yaml")
    (rollout,) = documents(DEPLOY / "argo-rollouts" / "rollout.yaml")
    analysis = next(s["analysis"] for s in rollout["spec"]["strategy"]["canary"]["steps"]
                    if "analysis" in s)  # fmt: skip
    args = {a["name"]: a["value"] for a in analysis["args"]}
    (from_secret,) = [a for a in template["spec"]["args"] if "valueFrom" in a]
    ref = from_secret["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    args[from_secret["name"]] = VERDICT  # the Secret's value, in this test's config
    (metric,) = template["spec"]["metrics"]
    web = metric["provider"]["web"]

    def filled(text: str) -> str:
        return re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", lambda m: args[m.group(1)], text)

    url = filled(web["url"])
    assert url.startswith(SERVICE)
    response = httpx.request(
        web.get("method", "GET"),
        api.url + url.removeprefix(SERVICE),
        headers={h["key"]: filled(h["value"]) for h in web["headers"]},
        timeout=web.get("timeoutSeconds", 10),
    )
    if not 200 <= response.status_code < 300:
        return "Error", response.status_code
    # The template's jsonPath is one field of the answer: "{$.<field>}".
    field = re.fullmatch(r"\{\$\.(\w+)\}", web["jsonPath"])
    assert field is not None, web["jsonPath"]
    result = response.json()[field.group(1)]

    def holds(condition: str) -> bool:
        # The template's conditions are comparisons of the result with a string.
        compared = re.fullmatch(r'result == "(\w+)"', condition)
        assert compared is not None, condition
        return bool(result == compared.group(1))

    if holds(metric["successCondition"]):
        return "Successful", result
    if holds(metric["failureCondition"]):
        return "Failed", result
    return "Inconclusive", result


@pytest.mark.parametrize(
    ("canary", "phase", "verdict"),
    [
        (HEALTHY, "Successful", "pass"),
        (SHIFTED, "Failed", "fail"),
        (None, "Inconclusive", "inconclusive"),
    ],
)
def test_argo_reads_pass_fail_and_inconclusive_apart(
    api: RolloutApi, canary: Version | None, phase: str, verdict: str
) -> None:
    if canary is None:
        api.clock.now = at(600)  # nothing served yet
    else:
        serve_canary(api, canary)
    assert argo_measure(api) == (phase, verdict)


def test_the_pair_verdict_shows_its_checks_and_span(api: RolloutApi) -> None:
    serve_canary(api, SHIFTED)
    params = {"stable": "v12", "canary": "v13", "weight": "25", "since": "15m"}
    with api.client(VERDICT) as controller:
        body = controller.get("/v1/models/fraud/verdict", params=params).json()
        without_weight = controller.get(
            "/v1/models/fraud/verdict", params={"stable": "v12", "canary": "v13"}
        ).json()
    assert body["verdict"] == "fail"
    assert body["reason"].startswith("failed: prediction_divergence: ")
    assert (body["model"], body["stable"], body["canary"], body["canary_percent"]) == (
        "fraud", "v12", "v13", 25,
    )  # fmt: skip
    assert (body["since"], body["until"]) == ("2027-01-15T07:55:00Z", "2027-01-15T08:10:00Z")
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["prediction_divergence"]["outcome"] == "fail"
    assert checks["prediction_divergence"]["value"] > checks["prediction_divergence"]["threshold"]
    assert checks["sample_ratio"]["outcome"] == "pass"
    assert checks["sample_ratio"]["n_canary"] + checks["sample_ratio"]["n_stable"] == 8000
    # No weight: no sample-ratio check; the default span is the hour before now.
    assert [c["name"] for c in without_weight["checks"]] == [
        "prediction_divergence",
        "accuracy_noninferiority",
        "latency_p95_ratio",
    ]
    assert without_weight["since"] == "2027-01-15T07:10:00Z"


def test_the_pair_defaults_to_production_and_the_newest_candidate(api: RolloutApi) -> None:
    api.accepted_run("v2")
    Ingestion(api.sessions).add(
        stream(np.random.default_rng(2), (Version("v1", 0.75), Version("v2", 0.25)), 8000, 0, 600)
    )
    api.clock.now = at(600)
    with api.client(VERDICT) as controller:
        body = controller.get("/v1/models/fraud/verdict", params={"weight": 25}).json()
    assert (body["stable"], body["canary"], body["verdict"]) == ("v1", "v2", "pass")


def test_a_rollouts_verdict_is_its_current_step_or_how_it_ended(api: RolloutApi) -> None:
    run_id = api.accepted_run("v2")
    with api.client(BOTH) as c:
        rollout_id = c.post("/v1/models/fraud/rollouts", json={"run_id": run_id}).json()[
            "rollout_id"
        ]
    with api.client(VERDICT) as controller:
        pending = controller.get(f"/v1/rollouts/{rollout_id}/verdict").json()
        assert pending["verdict"] == "inconclusive"
        assert "the split of step 1 is not applied yet" in pending["reason"]
        api.tick()  # step 1 at 25%, applied at at(0)
        shifted = replace(Version("v2", 0.25), shift=0.15)
        Ingestion(api.sessions).add(
            stream(np.random.default_rng(3), (Version("v1", 0.75), shifted), 8000, 0, 600)
        )
        api.clock.now = at(600)
        live = controller.get(f"/v1/rollouts/{rollout_id}/verdict").json()
        assert (live["verdict"], live["rollout_id"], live["canary_percent"]) == ("fail", 1, 25)
        assert live["since"] == "2027-01-15T08:00:00Z"
        api.tick()  # the rollout's own analysis fails it too
        api.tick()
        ended = controller.get(f"/v1/rollouts/{rollout_id}/verdict").json()
        assert ended["verdict"] == "fail" and ended["checks"] == []
        assert ended["reason"].startswith(f"rollout {rollout_id} was rolled back: failed checks")
        assert controller.get("/v1/rollouts/9/verdict").status_code == 404


def test_bad_verdict_parameters_are_422_naming_them(api: RolloutApi) -> None:
    with api.client(VERDICT) as controller:
        r = controller.get("/v1/models/fraud/verdict", params={"canary": "v1"})
        assert r.status_code == 422
        assert r.json()["problems"] == [
            {"location": "query.canary", "problem": "the canary is the stable version ('v1')"}
        ]
        r = controller.get("/v1/models/fraud/verdict", params={"canary": "v2", "since": "soon"})
        assert r.json()["message"] == (
            "query.since: expected a time with its offset or a duration such as 30m"
        )
        r = controller.get(
            "/v1/models/fraud/verdict",
            params={"canary": "v2", "since": "2027-01-15T09:00:00+00:00"},
        )
        assert r.status_code == 422 and "is not before" in r.json()["message"]
        # Valid times whose UTC Python cannot hold: a 422, not the database's error.
        for params, where in (
            ({"since": "0001-01-01T00:00:00+14:00"}, "query.since"),
            ({"until": "9999-12-31T23:59:59-14:00"}, "query.until"),
        ):
            r = controller.get("/v1/models/fraud/verdict", params={"canary": "v2", **params})
            assert r.status_code == 422, r.text
            assert r.json()["message"].startswith(f"{where}: "), r.text
        r = controller.get("/v1/models/fraud/verdict", params={"canary": "v2", "weight": 101})
        assert r.status_code == 422
        r = controller.get("/v1/models/fraud/verdict")
        assert r.status_code == 404
        assert r.json() == {
            "message": "model fraud has no canary or candidate; name the canary one"
        }
        assert controller.get("/v1/models/nope/verdict").status_code == 404


# --- Flagger: the webhooks of deploy/flagger/canary.yaml ---


def flagger_calls(token: str | None = VERDICT) -> list[tuple[str, dict[str, Any]]]:
    """Each webhook of the example Canary as Flagger calls it: its URL and the payload
    Flagger POSTs (name, namespace, phase, checksum, metadata), the token ours."""
    (canary,) = documents(DEPLOY / "flagger" / "canary.yaml")
    calls = []
    for hook in canary["spec"]["analysis"]["webhooks"]:
        metadata = dict(hook["metadata"])
        if token is None:
            metadata.pop("token")
        else:
            metadata["token"] = token
        payload = {
            "name": canary["metadata"]["name"],
            "namespace": canary["metadata"]["namespace"],
            "phase": "Progressing",
            "checksum": "7d4f8c9b6",
            "metadata": metadata,
        }
        calls.append((hook["url"], payload))
    assert len(calls) == 2
    return calls


def flagger_call(api: RolloutApi, url: str, payload: dict[str, Any]) -> httpx.Response:
    assert url.startswith(SERVICE)
    # Flagger sets only Content-Type: its webhooks have no headers of their own.
    return httpx.post(
        api.url + url.removeprefix(SERVICE),
        json=payload,
        headers={"Content-Type": "application/json"},
        timeout=20,
    )


def advances(response: httpx.Response) -> bool:
    """Flagger's rule: an answer above 202 is a failed check."""
    return response.status_code <= 202


@pytest.mark.parametrize(
    ("canary", "verdict"), [(HEALTHY, "pass"), (SHIFTED, "fail"), (None, "inconclusive")]
)
def test_flagger_advances_only_on_pass(
    db_url: str, tmp_path: Path, canary: Version | None, verdict: str
) -> None:
    with rollout_api(db_url, tmp_path) as api:
        if canary is None:
            api.clock.now = at(600)
        else:
            serve_canary(api, canary)
        for url, payload in flagger_calls():
            r = flagger_call(api, url, payload)
            assert r.status_code == (200 if verdict == "pass" else 412), r.text
            assert advances(r) is (verdict == "pass")
            body = r.json()
            assert (body["verdict"], body["stable"], body["canary"]) == (verdict, "v12", "v13")


def test_flagger_needs_a_verdict_token_and_known_metadata(api: RolloutApi) -> None:
    serve_canary(api, HEALTHY)
    (url, payload), _ = flagger_calls(token=None)
    assert flagger_call(api, url, payload).status_code == 401
    for token, status in (("wrong", 401), (READ, 403), (BOTH, 403)):
        r = flagger_call(api, url, {**payload, "metadata": {**payload["metadata"], "token": token}})
        assert r.status_code == status, token
    # A header works too, for callers that can send one.
    r = httpx.post(
        api.url + url.removeprefix(SERVICE),
        json=payload,
        headers={"Authorization": f"Bearer {VERDICT}"},
    )
    assert r.status_code == 200
    odd = {**payload, "metadata": {**payload["metadata"], "token": VERDICT, "modle": "fraud"}}
    r = flagger_call(api, url, odd)
    assert r.status_code == 422
    assert r.json()["problems"][0]["location"] == "body.metadata"
    for given, status in (("abc", 422), ("9" * 25, 422), ("0", 422), ("7", 404)):
        r = flagger_call(api, url, {**payload, "metadata": {"rollout": given, "token": VERDICT}})
        assert r.status_code == status, given
    weird = {**payload["metadata"], "weight": "1e3", "token": VERDICT}
    r = flagger_call(api, url, {**payload, "metadata": weird})
    assert r.json()["problems"] == [
        {"location": "body.metadata.weight", "problem": "expected a percent from 0 to 100"}
    ]
    nameless = {k: v for k, v in payload["metadata"].items() if k != "model"}
    r = flagger_call(api, url, {**payload, "metadata": {**nameless, "token": VERDICT}})
    assert (r.status_code, r.json()["message"]) == (
        422,
        "body.metadata.model: required (or metadata.rollout)",
    )
