"""Every router, end to end on live traffic (issue 20, first acceptance criterion).

Per router (``file`` on disk, ``replicas``, ``gateway-api``, ``istio`` and ``kserve``
on the Kubernetes API emulator through the official client, ``manual``) and per case,
one model rolls out its candidate v2 against production v1 with the service's
wiring, the real analysis and the real ingestion:

- ``healthy``: v2 predicts and errs as v1 does; it walks every step and is promoted;
- ``shifted``: v2's predictions are moved up; rolled back at the first analysis, on
  the prediction divergence;
- ``worse``: v2 predicts as v1 but is right half the time, v1 nine times in ten
  (margin 0.1); rolled back at the first analysis, on the accuracy non-inferiority;
- ``sparse``: a model with too little traffic for a step's canary events; the step
  holds, then pauses at its deadline, and the ``rollout_paused`` alert reaches a
  webhook.

Traffic follows each router by construction (:mod:`tests.harness.traffic`): before
each window, the test reads what the router's backend serves (the file, the
Deployments' ready replicas and model URIs, the route weights, the InferenceService's
revisions) and stamps that share of the window's events with each version; events
and labels go through a real Kafka broker into the ingestion, which stores the
window aggregates the analysis reads (PostgreSQL). All rollouts share one broker,
one emulator, one ingestion and one driver, on one clock the test moves a window at
a time once everything of the window is stored.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_session_factory
from retrain.rollout.base import Router
from retrain.rollout.file import load
from retrain.rollout.kserve import CANARY_VERSION, STABLE_VERSION
from retrain.rollout.manual import ManualRouter
from retrain.rollout.replicas import VERSION_ANNOTATION
from service.alerts import build_worker
from service.alerts.worker import OutboxWorker
from service.config import load_config
from service.config.alerts import AlertsConfig
from service.wiring.rollouts import build_rollouts, build_routers
from tests.harness.inprocess import InProcessService
from tests.harness.k8s.cluster import until, write_kubeconfig
from tests.harness.k8s.routed import (
    CLUSTER_ROUTERS,
    GATEWAY,
    ISTIO,
    KSERVE,
    RoutedCluster,
    model_uri,
)
from tests.harness.k8s.server import Emulator
from tests.harness.kafka import TestKafka
from tests.harness.live_rollouts import (
    MIN_EVENTS,
    WINDOW,
    Fleet,
    Outcome,
    lanes_of,
    model_config,
    rollout_file,
    router_section,
    versions,
)
from tests.harness.postgres import Databases
from tests.harness.receivers import Receiver, receiver
from tests.harness.scenario import create_topics, write_config
from tests.harness.traffic import AS_STABLE, SHIFTED, WORSE, Traffic

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

KINDS = ("file", "replicas", "gateway-api", "istio", "kserve", "manual")
CASES = {"healthy": AS_STABLE, "shifted": SHIFTED, "worse": WORSE, "sparse": AS_STABLE}
PER_WINDOW = 400  # 20 canary events at 5%: a step's minimum
# Fewer than 20 canary events in the three windows a step may wait, whichever the router
# (the replicas router serves 25% at the first step).
SPARSE = 24
ROUNDS = 12
# Event time three days back, on a window boundary: ingestion refuses events from its future.
T0 = datetime.fromtimestamp((int(time.time()) - 3 * 86400) // 60 * 60, UTC)
ROLLED_BACK = ("shifted", "worse")


def name(kind: str, case: str) -> str:
    return f"{kind}-{case}"


@dataclass
class Run:
    fleet: Fleet
    cluster: RoutedCluster
    routers: dict[str, Router]
    hook: Receiver
    workdir: Path
    sent: dict[str, list[Counter[str]]]
    # An InferenceService's (storageUri, canaryTrafficPercent) after each tick, as changed.
    revisions: dict[str, list[tuple[str, int | None]]]

    def outcome(self, kind: str, case: str) -> Outcome:
        return self.fleet.outcomes[name(kind, case)]


@pytest.fixture(scope="module")
def run(
    kafka: TestKafka,
    pg_databases: Databases,
    pg_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("routers")
    url = pg_databases.create(template=pg_template)
    topic = f"routers-{os.getpid()}-{time.time_ns()}"
    create_topics(kafka, topic)
    with ExitStack() as stack:
        emulator = Emulator().start()
        stack.callback(emulator.stop)
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", emulator.url)
        kinds = {name(k, c): k for k in KINDS for c in CASES}
        models = {
            m: model_config(router_section(k, m, workdir, kubeconfig)) for m, k in kinds.items()
        }
        config = write_config(
            workdir / "config.yaml",
            bootstrap_servers=kafka.bootstrap_servers,
            api_version=kafka.api_version,
            database_url=url,
            topic=topic,
            group_id=topic,
            models=models,
            flush_interval="100ms",
        )
        cfg = load_config(config, env={})
        cluster = RoutedCluster(emulator)
        for model, kind in kinds.items():
            if kind in CLUSTER_ROUTERS:
                cluster.seed(kind, model, versions(model))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        sessions = make_session_factory(engine)
        clock = [T0]
        routers = build_routers(cfg)
        driver = build_rollouts(cfg, sessions, routers=routers, clock=lambda: clock[0])
        fleet = Fleet(sessions, driver, routers, kinds, cluster, clock, workdir)
        for model in kinds:
            fleet.start(model, T0)
        hook = stack.enter_context(receiver("webhook", secret="hook-secret"))
        worker = _alerts_to(hook, sessions, clock)
        stack.callback(worker.close)
        service = InProcessService(config)
        stack.callback(service.stop)
        traffic = Traffic(kafka, topic, WINDOW)
        stack.callback(traffic.close)
        canaries = {name(k, c): b for k in KINDS for c, b in CASES.items()}
        per_window = {m: SPARSE if m.endswith("-sparse") else PER_WINDOW for m in kinds}
        revisions: dict[str, list[tuple[str, int | None]]] = {m: [] for m in kinds}

        def after_tick() -> None:
            worker.tick()
            for model in (name("kserve", c) for c in CASES):
                _changed(revisions[model], _revision(cluster, model))

        fleet.run(traffic, lanes_of(canaries, per_window), ROUNDS, on_tick=after_tick)
        paused = {name(k, "sparse") for k in KINDS}
        until(lambda: worker.tick() >= 0 and paused <= _alerted(hook, "rollout_paused"), 60.0)
        yield Run(fleet, cluster, routers, hook, workdir, fleet.sent, revisions)


def _alerts_to(
    hook: Receiver, sessions: sessionmaker[Session], clock: list[datetime]
) -> OutboxWorker:
    """The outbox worker delivering every alert to ``hook``, on the test's clock."""
    alerts = AlertsConfig.model_validate(
        {
            "channels": {
                "hook": {
                    "type": "webhook",
                    "url": hook.url,
                    "secret": hook.secret,
                    # Every rollout's alerts within the minutes of the test's clock.
                    "rate_limit": 1000,
                }
            },
            "routes": [{"channels": ["hook"]}],
        }
    )
    return build_worker(alerts, sessions, None, lambda: clock[0])


def _revision(cluster: RoutedCluster, model: str) -> tuple[str, int | None]:
    predictor = cluster.custom(KSERVE, model)["spec"]["predictor"]
    return predictor["model"]["storageUri"], predictor.get("canaryTrafficPercent")


def _changed(seen: list[tuple[str, int | None]], now: tuple[str, int | None]) -> None:
    if seen[-1:] != [now]:
        seen.append(now)


def _alerted(hook: Receiver, kind: str) -> set[str]:
    return {r.json["model"] for r in hook.accepted if r.json["kind"] == kind}


def _all(*cases: str) -> list[Any]:
    return [pytest.param(k, c, id=name(k, c)) for k in KINDS for c in cases]


STEPS = [("progressing", i) for i in range(4)]
HISTORY = {
    "healthy": [("pending", 0), *STEPS, ("promoting", 3), ("promoted", 3)],
    "shifted": [("pending", 0), ("progressing", 0), ("rolling_back", 0), ("rolled_back", 0)],
    "worse": [("pending", 0), ("progressing", 0), ("rolling_back", 0), ("rolled_back", 0)],
    "sparse": [("pending", 0), ("progressing", 0), ("paused", 0)],
}
STAGES = {
    "healthy": {"v1": "archived", "v2": "production"},
    "shifted": {"v1": "production", "v2": "rejected"},
    "worse": {"v1": "production", "v2": "rejected"},
    "sparse": {"v1": "production", "v2": "canary"},
}
ALERTS = {
    "healthy": "rollout_promoted",
    "shifted": "rollout_rolled_back",
    "worse": "rollout_rolled_back",
    "sparse": "rollout_paused",
}


@pytest.mark.parametrize(("kind", "case"), _all(*CASES))
def test_each_rollout_ends_in_its_phase_with_its_registry_and_alert(
    run: Run, kind: str, case: str
) -> None:
    outcome = run.outcome(kind, case)
    assert outcome.history is not None
    assert [(p, s) for p, s, _ in outcome.history] == HISTORY[case], outcome.history
    assert outcome.stages == STAGES[case]
    model = name(kind, case)
    assert model in _alerted(run.hook, "rollout_started")
    assert model in _alerted(run.hook, ALERTS[case])


@pytest.mark.parametrize(("kind", "case"), _all("healthy"))
def test_a_healthy_canary_passes_every_analysis_and_is_promoted(
    run: Run, kind: str, case: str
) -> None:
    outcome = run.outcome(kind, case)
    # Ticks: the four steps' splits, each judged a window later; the promotion asked,
    # then confirmed on the next tick.
    assert outcome.timeline == ["progressing"] * 4 + ["promoting", "promoted"]
    analyses = outcome.analyses or []
    assert sorted({step for step, _, _ in analyses}) == [0, 1, 2, 3]
    assert not [a for a in analyses if a[2] == "fail"], analyses
    outcomes = {(step, check): result for step, check, result in analyses}
    # At 100% stable expects no event: the split cannot be tested (the replicas router
    # still serves a quarter on stable).
    srm = ["pass"] * 3 + ["pass" if kind == "replicas" else "inconclusive"]
    assert [outcomes[(i, "sample_ratio")] for i in range(4)] == srm
    assert [outcomes[(i, "prediction_divergence")] for i in range(3)] == ["pass"] * 3
    # The deciding step (50%, the last on which stable serves) needs the labels' verdict.
    assert outcomes[(2, "accuracy_noninferiority")] == "pass"


@pytest.mark.parametrize(("kind", "case"), _all(*ROLLED_BACK))
def test_a_bad_canary_is_rolled_back_at_the_first_analysis(run: Run, kind: str, case: str) -> None:
    outcome = run.outcome(kind, case)
    # Ticks: the first step's split; its analysis on the first window, failed.
    # KServe's rollback takes a tick per write: 0%, the stable URI, the field removed.
    rolling = ["rolling_back"] * (2 if kind == "kserve" else 1)
    assert outcome.timeline == ["progressing", *rolling, "rolled_back"]
    failing = "prediction_divergence" if case == "shifted" else "accuracy_noninferiority"
    analyses = outcome.analyses or []
    assert {step for step, _, _ in analyses} == {0}
    assert [c for _, c, result in analyses if result == "fail"] == [failing]
    assert outcome.reason is not None and outcome.reason.startswith(
        f"failed checks at step 1: {failing}: fail"
    )
    assert outcome.history is not None
    assert f"v2 rejected: failed checks at step 1: {failing}" in outcome.history[-1][2]


@pytest.mark.parametrize(("kind", "case"), _all("sparse"))
def test_too_few_canary_events_hold_then_pause(run: Run, kind: str, case: str) -> None:
    outcome = run.outcome(kind, case)
    # Held on the two ticks after its first windows (the span growing by a window each),
    # paused on the one its deadline passed.
    assert outcome.timeline[:4] == ["progressing", "progressing", "progressing", "paused"]
    assert set(outcome.timeline[4:]) <= {"paused"}  # until the other rollouts ended
    assert outcome.analyses == []
    # Three windows of the first step: its minimum duration and its deadline after it.
    canary = 3 * SPARSE * (25 if kind == "replicas" else 5) // 100
    assert outcome.reason == (
        f"step 1 without a verdict by its deadline: {canary} canary events of {MIN_EVENTS}"
    )
    paused = [r.json for r in run.hook.accepted if r.json["kind"] == "rollout_paused"]
    assert [a["model"] for a in paused].count(name(kind, case)) == 1


@pytest.mark.parametrize(("kind", "case"), _all(*CASES))
def test_traffic_followed_the_split_the_router_applied(run: Run, kind: str, case: str) -> None:
    per_window = SPARSE if case == "sparse" else PER_WINDOW
    # The replicas router serves whole replicas of four: 25, 25, 50 and 75%.
    percents = [25, 25, 50, 75] if kind == "replicas" else [5, 25, 50, 100]
    sent = run.sent[name(kind, case)]
    canary = [window["v2"] for window in sent]
    assert all(sum(window.values()) == per_window for window in sent)
    expected = {"healthy": percents, "sparse": [percents[0]] * 3}.get(case, percents[:1])
    assert canary == [per_window * p // 100 for p in expected]


@pytest.mark.parametrize(("kind", "case"), _all(*CASES))
def test_the_router_objects_end_in_the_expected_state(run: Run, kind: str, case: str) -> None:
    model = name(kind, case)
    promoted, paused = case == "healthy", case == "sparse"
    end = "v2" if promoted else "v1"
    v = versions(model)
    if kind == "file":
        state = load(rollout_file(run.workdir, model))
        assert state is not None
        canary = state.canary.version if state.canary is not None else None
        want = ("v1", "v2", 5) if paused else (end, None, 0)
        assert (state.stable.version, canary, state.canary_percent) == want
    elif kind == "replicas":
        assert _deployments(run.cluster, model) == (
            ((3, v.stable_uri, "v1"), (1, v.canary_uri, "v2"))
            if paused
            else ((4, v.canary_uri if promoted else v.stable_uri, end), 0)
        )
    elif kind in ("gateway-api", "istio"):
        assert _route_weights(run.cluster, kind, model) == (
            (95, 5) if paused else (0, 100) if promoted else (100, 0)
        )
    elif kind == "kserve":
        isvc = run.cluster.custom(KSERVE, model)
        predictor, annotations = isvc["spec"]["predictor"], isvc["metadata"]["annotations"]
        got = (
            predictor["model"]["storageUri"],
            predictor.get("canaryTrafficPercent"),
            annotations.get(STABLE_VERSION),
            annotations.get(CANARY_VERSION),
        )
        if paused:
            assert got == (v.canary_uri, 5, "v1", "v2")
        else:
            assert got == (v.canary_uri if promoted else v.stable_uri, None, end, None)
    else:
        router = run.routers[model]
        assert isinstance(router, ManualRouter)
        last = router.instructions[-1]
        if paused:
            assert router.get_weights().canary_percent == 5
            assert "send 5% of" in last
        elif promoted:
            assert "make version v2 (" in last and "the stable version" in last
        else:
            assert "back to version v1 (" in last


def _deployments(cluster: RoutedCluster, model: str) -> tuple[Any, Any]:
    def served(name: str) -> Any:
        dep = cluster.deployment(name)
        annotations = dep.spec.template.metadata.annotations or {}
        return dep.spec.replicas, model_uri(dep), annotations.get(VERSION_ANNOTATION)

    stable, canary = served(model), served(f"{model}-canary")
    return stable, canary if canary[0] else 0


def _route_weights(cluster: RoutedCluster, kind: str, model: str) -> tuple[int, int]:
    if kind == "gateway-api":
        targets = cluster.custom(GATEWAY, model)["spec"]["rules"][0]["backendRefs"]
    else:
        targets = cluster.custom(ISTIO, model)["spec"]["http"][0]["route"]
    stable, canary = (int(t.get("weight", 0)) for t in targets)
    return stable, canary


@pytest.mark.parametrize("case", ["healthy", *ROLLED_BACK])
def test_kserve_moves_the_revisions_in_its_documented_order(run: Run, case: str) -> None:
    v = versions(name("kserve", case))
    if case == "healthy":
        # Each step's percent on the canary's URI; promotion removes the field.
        want = [(v.canary_uri, p) for p in (5, 25, 50, 100)] + [(v.canary_uri, None)]
    else:
        # The canary's share to 0 first, then the stable URI at 0% (a new revision that
        # takes no traffic until ready), then the field removed.
        want = [(v.canary_uri, 5), (v.canary_uri, 0), (v.stable_uri, 0), (v.stable_uri, None)]
    assert run.revisions[name("kserve", case)] == want
