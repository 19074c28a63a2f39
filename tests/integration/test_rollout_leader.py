"""Two ``driftwatch run`` replicas and one active rollout: only the leader ticks it, and
when the leader is SIGKILLed mid-rollout the other takes over and finishes it as an
undisturbed rollout ends, no step made twice.

Run once with the PostgreSQL advisory lock, once with a Lease on the Kubernetes API
emulator (the official client over HTTP). The replicas are real processes
(:mod:`tests.harness.replica`: the service's ``run`` with a scripted analysis that
holds a step while a marker file exists, and routers that record each call with the
process id). The leader is made by construction: replica A starts alone and is
waited on until it drives the rollout; B starts next and is waited on until its
scheduler has skipped the ``rollout`` job as a follower. The kill happens while A
holds step 2 (25%); the hold is lifted only after A is dead.

Who acted is read from what each process leaves: its router calls (with its pid),
its log lines about the rollout, its ``driftwatch_leader`` gauge and, on the
emulator, the Lease's holder, which B takes only after A's Lease expired. The
handover time is printed (``rollout_leader[backend]: handover S s``), not asserted.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from service.config import load_config
from service.wiring.rollouts import build_rollouts
from tests.harness.k8s.cluster import NAMESPACE, cluster, until, write_kubeconfig
from tests.harness.k8s.server import Emulator
from tests.harness.scenario import REPO, ServiceProcess
from tests.integration.test_rollout_kill import expected, state

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

NOW = datetime(2026, 12, 5, tzinfo=UTC)
STEPS = [5, 25, 50, 100]
LEASE = "driftwatch-rollouts"
LEADER = {"lease_name": LEASE, "lease_duration": "3s", "renew_deadline": "2s", "retry_period": "1s"}
# Hang guards of the waits, not timings: a takeover needs about a lease duration.
LIMIT = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _model(split: Path) -> dict[str, Any]:
    return {
        "window": "1m",
        "features": {"amount": {"type": "numerical"}},
        "rollout": {
            "enabled": True,
            "router": "file",
            "file": {"path": str(split)},
            "steps": [{"weight": w, "min_duration": "0s", "min_events": 1} for w in STEPS],
        },
    }


def _start_rollout(database_url: str, config: Path) -> tuple[int, Any]:
    """Production v1, and v2 of an accepted run rolled out through the driver."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as s:
        registry = RegistryRepository(s)
        registry.register("fraud", "v1", "file:///m/v1.skops", "a" * 64, Stage.PRODUCTION, NOW)
        runs = RunRepository(s)
        run = runs.start("fraud", "request", "leader test", NOW, NOW, "validating", NOW)
        assert run is not None
        candidate = registry.register(
            "fraud", "v2", "file:///m/v2.skops", "b" * 64, Stage.CANDIDATE, NOW, run_id=run.id
        )
        run.candidate_version_id = candidate.id
        # Accepted and over: the replicas' retraining tick leaves it alone.
        runs.enter(run, "accepted", "accepted", NOW, final=True)
        run_id = run.id
    driver = build_rollouts(load_config(config, env={}), sessions, analyse=lambda *_: [])
    return driver.start("fraud", run_id), sessions


def _metric(port: int, name: str, **labels: str) -> float:
    """A sample of a replica's ``/metrics`` (0 when it has none yet)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _calls(split: Path) -> list[tuple[str, str, int]]:
    path = split.parent / "calls"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(m, note, int(pid)) for m, note, pid in (line.split() for line in lines)]


def _distinct(calls: list[tuple[str, str, int]]) -> list[tuple[str, str]]:
    """The calls with a repeated one (a hold stating its split again) counted once."""
    out: list[tuple[str, str]] = []
    for method, note, _ in calls:
        if not out or out[-1] != (method, note):
            out.append((method, note))
    return out


class Replica(ServiceProcess):
    """``driftwatch run`` through :mod:`tests.harness.replica`."""

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.harness.replica", str(self.config)],
                cwd=REPO,
                env={**self.env, "PYTHONPATH": str(REPO)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )


def _acted(svc: Replica, rollout_id: int) -> bool:
    return f"rollout {rollout_id} of fraud:" in svc.log_text()


@pytest.fixture(params=["postgres", "kubernetes"])
def leader(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "postgres":
        yield {"backend": "postgres", **LEADER}
        return
    with cluster(tmp_path, kubelet=False) as (emulator, _):
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", emulator.url)
        request.node.emulator = emulator
        yield {
            "backend": "kubernetes",
            "kubeconfig": str(kubeconfig),
            "namespace": NAMESPACE,
            **LEADER,
        }


def _lease(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The Lease's spec on the emulator ({} with the PostgreSQL backend)."""
    emulator: Emulator | None = getattr(request.node, "emulator", None)
    if emulator is None:
        return {}
    spec: dict[str, Any] = emulator.store.get("leases", NAMESPACE, LEASE)["spec"]
    return spec


def _time(spec: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(spec[key])


def test_one_replica_drives_the_rollout_and_the_other_finishes_it_after_a_kill(
    pg_url: str,
    tmp_path: Path,
    make_config: Callable[..., Path],
    leader: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    split = tmp_path / "serve" / "split.json"
    split.parent.mkdir()
    ports = {"a": _free_port(), "b": _free_port()}
    configs = {
        name: make_config(
            pg_url,
            models={"fraud": _model(split)},
            extra={
                "metrics": {"port": port},
                "retrain": {"executor": "fake", "workdir": str(tmp_path / "runs"), "tick": "200ms"},
                "leader": leader,
            },
        )
        for name, port in ports.items()
    }
    rollout_id, sessions = _start_rollout(pg_url, configs["a"])
    (split.parent / "hold-25").touch()
    svc = {
        name: Replica(
            configs[name], tmp_path / f"replica-{name}.log", env={"POD_NAME": f"replica-{name}"}
        )
        for name in ports
    }
    try:
        svc["a"].start()
        a_pid = svc["a"].proc.pid  # type: ignore[union-attr]
        # A leads and holds step 2: its split is served and it states it again each tick.
        until(lambda: [c[:2] for c in _calls(split)].count(("set_weights", "25")) >= 2, LIMIT)
        svc["b"].start()
        b_pid = svc["b"].proc.pid  # type: ignore[union-attr]
        skipped = "driftwatch_scheduler_job_skipped_total"
        until(lambda: _metric(ports["b"], skipped, job="rollout", reason="not_leader") >= 3, LIMIT)
        before = _calls(split)
        assert {pid for *_, pid in before} == {a_pid}
        assert _metric(ports["a"], "driftwatch_leader") == 1.0
        assert _metric(ports["b"], "driftwatch_leader") == 0.0
        assert not _acted(svc["b"], rollout_id) and _acted(svc["a"], rollout_id)
        if "kubeconfig" in leader:
            held = _lease(request)
            assert held["holderIdentity"] == f"replica-a_{a_pid}"
        with transaction(sessions) as s:
            row = RolloutRepository(s).get(rollout_id)
            assert row is not None and (row.phase, row.step) == ("progressing", 1)

        svc["a"].kill()
        (split.parent / "hold-25").unlink()
        killed_at = time.monotonic()
        until(lambda: _metric(ports["b"], "driftwatch_leader") == 1.0, LIMIT)
        handover = time.monotonic() - killed_at
        until(lambda: state(sessions, rollout_id, split)["phase"] == "promoted", LIMIT)
        assert svc["b"].alive(), svc["b"].log_text()
    finally:
        for replica in svc.values():
            if replica.alive():
                replica.kill()
    print(f"rollout_leader[{leader['backend']}]: handover {handover:.1f} s after the kill")

    assert state(sessions, rollout_id, split) == expected("healthy", rollout_id)
    calls = _calls(split)
    # A's calls (it states its held split again each tick until it is killed), then
    # B's: never interleaved.
    assert calls[: len(before)] == before
    pids = [pid for *_, pid in calls]
    taken = pids.index(b_pid)
    assert set(pids[:taken]) == {a_pid} and set(pids[taken:]) == {b_pid}
    assert _distinct(calls) == [
        ("set_weights", "5"),
        ("set_weights", "25"),
        ("set_weights", "50"),
        ("set_weights", "100"),
        ("promote", "v2"),
    ]
    if "kubeconfig" in leader:
        taken = _lease(request)
        assert taken["holderIdentity"] == f"replica-b_{b_pid}"
        # B took the Lease only once A's had expired: not before a renewal A made while
        # alive (its last one is later still) plus the lease duration.
        expiry = _time(held, "renewTime") + timedelta(seconds=held["leaseDurationSeconds"])
        assert _time(taken, "acquireTime") >= expiry
