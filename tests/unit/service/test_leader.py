"""``leader.*`` and ``retention.*`` settings, and the elector each backend name builds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from service.cli import main
from service.config.scheduler import LeaderConfig
from service.leader import BACKENDS, AlwaysLeader, LeaderError, make_elector, resolve_backend
from service.leader.kubernetes import LeaseElector
from service.leader.postgres import AdvisoryLockElector, lock_key
from tests.harness.k8s.cluster import write_kubeconfig
from tests.unit.service.test_config import load, mutated, problems

PG = "postgresql+psycopg://driftwatch@127.0.0.1:5432/driftwatch"


def with_url(url: str, **leader: Any) -> dict[str, Any]:
    raw = mutated("database.url", url)
    raw["leader"] = leader
    return raw


@pytest.mark.parametrize(
    ("backend", "url", "env", "expected"),
    [
        ("auto", "sqlite:///x.db", {}, "none"),
        ("auto", PG, {}, "postgres"),
        ("auto", PG, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "kubernetes"),
        ("auto", "sqlite:///x.db", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "kubernetes"),
        ("none", PG, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "none"),
        ("postgres", PG, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "postgres"),
    ],
)
def test_auto_picks_the_backend_from_where_it_runs(
    tmp_path: Path, backend: str, url: str, env: dict[str, str], expected: str
) -> None:
    cfg = load(tmp_path, with_url(url, backend=backend))
    assert resolve_backend(cfg, env) == expected


def test_each_backend_name_builds_its_elector(tmp_path: Path) -> None:
    assert isinstance(make_elector(load(tmp_path, with_url("sqlite:///x.db")), {}), AlwaysLeader)

    pg = make_elector(load(tmp_path, with_url(PG, lease_name="dw-prod")), {})
    assert isinstance(pg, AdvisoryLockElector)
    assert pg.key == lock_key("dw-prod") != lock_key("driftwatch")

    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1", "ml")
    raw = with_url(PG, backend="kubernetes", kubeconfig=str(kubeconfig), lease_name="dw")
    lease = make_elector(load(tmp_path, raw), {"POD_NAME": "driftwatch-0"})
    assert isinstance(lease, LeaseElector)
    assert (lease.name, lease.namespace) == ("dw", "ml")  # the context's namespace
    assert lease.identity.startswith("driftwatch-0_")
    raw["leader"]["namespace"] = "monitoring"
    lease = make_elector(load(tmp_path, raw), {})
    assert isinstance(lease, LeaseElector)
    assert lease.namespace == "monitoring"


def test_an_elector_that_cannot_be_built_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(LeaderError, match=r"^leader\.backend: postgres needs a PostgreSQL"):
        make_elector(load(tmp_path, with_url("sqlite:///x.db", backend="postgres")), {})
    missing = str(tmp_path / "nope")
    with pytest.raises(LeaderError, match=r"^leader\.kubeconfig: "):
        make_elector(load(tmp_path, with_url(PG, backend="kubernetes", kubeconfig=missing)), {})


def test_the_factory_refuses_a_backend_it_has_no_builder_for(tmp_path: Path) -> None:
    cfg = load(tmp_path, with_url(PG))
    # model_copy skips validation: the factory must not lean on config to catch the name.
    etcd = cfg.model_copy(update={"leader": cfg.leader.model_copy(update={"backend": "etcd"})})
    expected = (
        r"^leader\.backend: unknown backend 'etcd'; expected auto, kubernetes, none, postgres$"
    )
    with pytest.raises(LeaderError, match=expected):
        make_elector(etcd, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})


def test_config_admits_exactly_the_backends_the_factory_builds() -> None:
    allowed = get_args(LeaderConfig.model_fields["backend"].annotation)
    assert sorted(allowed) == sorted(["auto", *BACKENDS])


def test_an_unknown_backend_stops_start_up_naming_the_key_and_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "driftwatch.yaml"
    path.write_text(yaml.safe_dump(with_url("sqlite:///x.db")), encoding="utf-8")
    for name in [n for n in os.environ if n.startswith("DRIFTWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTWATCH_LEADER__BACKEND", "kubernets")
    assert main(["run", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        "config: leader.backend: Input should be 'auto', 'kubernetes', 'postgres' or 'none'\n"
    )


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        (
            "leader",
            {"backend": "etcd"},
            "config: leader.backend: Input should be 'auto', 'kubernetes', 'postgres' or 'none'",
        ),
        (
            "leader",
            {"lease_duration": "10s", "renew_deadline": "10s"},
            "config: leader: renew_deadline (10s) must be shorter than lease_duration (10s)",
        ),
        (
            "leader",
            {"renew_deadline": "3s", "retry_period": "3s"},
            "config: leader: renew_deadline (3s) must be longer than 1.2 x retry_period (3s)",
        ),
        (
            "leader",
            {"retry_period": "500ms"},
            "config: leader.retry_period: Input should be greater than or equal to 1",
        ),
        (
            "leader",
            {"lease_duration": "15500ms"},
            "config: leader.lease_duration: expected a whole number of seconds, at least 1s",
        ),
        (
            "leader",
            {"lease_name": "Driftwatch_Leader"},
            "config: leader.lease_name: String should match pattern "
            "'^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'",
        ),
        ("leader", {"lease": "x"}, "config: leader.lease: unknown key"),
        (
            "retention",
            {"sketches": "30d", "reports": "7d"},
            "config: retention: reports (7d) must be at least sketches (30d): "
            "a window whose report is gone but whose sketches remain is evaluated again",
        ),
        (
            "retention",
            {"outbox": "forever"},
            "config: retention.outbox: expected a duration such as 30s, 5m or 1h",
        ),
        (
            "retention",
            {"batch_size": 0},
            "config: retention.batch_size: Input should be greater than 0",
        ),
    ],
)
def test_bad_leader_and_retention_settings_name_the_key(
    tmp_path: Path, section: str, value: dict[str, Any], expected: str
) -> None:
    assert problems(tmp_path, mutated(section, value)) == [expected]


def test_defaults_are_those_the_readme_gives(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    leader, retention = cfg.leader, cfg.retention
    assert (leader.backend, leader.lease_name, leader.namespace) == ("auto", "driftwatch", None)
    durations = (leader.lease_duration, leader.renew_deadline, leader.retry_period)
    assert durations == (15.0, 10.0, 2.0)
    assert (retention.enabled, retention.interval) == (True, 3600.0)
    ages = (retention.sketches, retention.reports, retention.outbox, retention.idempotency_keys)
    assert ages == (7 * 86400.0, 90 * 86400.0, 30 * 86400.0, 7 * 86400.0)
    assert (retention.batch_size, retention.max_batches) == (1000, 20)
