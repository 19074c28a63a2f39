"""``retrain.kubernetes`` is validated at start-up; each error names its key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from retrain.errors import ExecutorError
from retrain.executors import make_executor
from retrain.executors.kubernetes import KubernetesExecutor
from service.config import load_config
from service.errors import ConfigError
from service.wiring.retraining import build_retraining
from tests.harness.k8s.cluster import NAMESPACE, cluster, python_job, until, write_kubeconfig
from tests.harness.k8s.server import Fault
from tests.unit.service.test_config import BASE


def problems(tmp_path: Path, retrain: dict[str, Any]) -> str:
    raw = copy.deepcopy(BASE)
    raw["retrain"] = retrain
    path = tmp_path / "driftwatch.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    return str(info.value)


def template(tmp_path: Path) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(python_job("pass")), encoding="utf-8")
    return str(path)


def test_kubernetes_without_its_settings_names_the_key(tmp_path: Path) -> None:
    assert "config: retrain: kubernetes: required when executor is kubernetes" in problems(
        tmp_path, {"executor": "kubernetes"}
    )


def test_an_unreadable_template_names_the_key(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        {"executor": "kubernetes", "kubernetes": {"namespace": "ml", "template": "/nope.yaml"}},
    )
    assert "retrain.kubernetes.template" in message and "cannot read" in message


def test_a_missing_namespace_names_the_key(tmp_path: Path) -> None:
    message = problems(
        tmp_path, {"executor": "kubernetes", "kubernetes": {"template": template(tmp_path)}}
    )
    assert "retrain.kubernetes.namespace" in message


def test_a_ttl_shorter_than_ten_ticks_is_refused(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        {
            "executor": "kubernetes",
            "tick": "5s",
            "kubernetes": {"namespace": "ml", "template": template(tmp_path), "ttl_seconds": 10},
        },
    )
    assert "kubernetes.ttl_seconds" in message


def test_an_unknown_executor_is_refused(tmp_path: Path) -> None:
    assert "retrain.executor" in problems(tmp_path, {"executor": "k8s"})


def test_the_factory_names_a_missing_kubeconfig(tmp_path: Path) -> None:
    raw = copy.deepcopy(BASE)
    missing = str(tmp_path / "absent-kubeconfig")
    raw["retrain"] = {
        "executor": "kubernetes",
        "kubernetes": {"namespace": "ml", "template": template(tmp_path), "kubeconfig": missing},
    }
    path = tmp_path / "driftwatch.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    cfg = load_config(path, {})
    with pytest.raises(ExecutorError) as info:
        make_executor(cfg.retrain.executor, cfg.retrain)
    assert str(info.value).startswith("retrain.kubernetes.kubeconfig:")
    assert not info.value.retriable


def test_the_retraining_a_config_builds_closes_its_job_watch(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """What ``driftwatch run`` closes at shutdown (``Retraining.close``) ends the watch."""
    with cluster(tmp_path, kubelet=False) as (emulator, _):
        raw = copy.deepcopy(BASE)
        raw["retrain"] = {
            "executor": "kubernetes",
            "kubernetes": {
                "namespace": NAMESPACE,
                "template": template(tmp_path),
                "kubeconfig": str(write_kubeconfig(tmp_path / "kubeconfig", emulator.url)),
            },
        }
        path = tmp_path / "driftwatch.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        retraining = build_retraining(load_config(path, {}), sessions)
        executor = retraining.driver.loop.executor
        assert isinstance(executor, KubernetesExecutor)
        executor.cache.start()
        until(lambda: emulator.watched_from)  # listed, and watching
        retraining.close()
        assert not executor.cache.running


@pytest.mark.timeout(60)  # without a deadline the read waits out the server's two minutes
def test_a_template_configmap_read_that_hangs_fails_the_start_up_at_its_deadline(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, kubelet=False) as (emulator, _):
        emulator.inject(Fault("get", "configmaps", 0, count=10, delay=120.0))  # and retries
        raw = copy.deepcopy(BASE)
        raw["retrain"] = {
            "executor": "kubernetes",
            "kubernetes": {
                "namespace": NAMESPACE,
                "template_configmap": "trainer-job/job.yaml",
                "kubeconfig": str(write_kubeconfig(tmp_path / "kubeconfig", emulator.url)),
                "request_timeout": "1s",
            },
        }
        path = tmp_path / "driftwatch.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        cfg = load_config(path, {})
        with pytest.raises(ExecutorError) as info:
            make_executor(cfg.retrain.executor, cfg.retrain)
        assert "retrain.kubernetes.template_configmap: get trainer-job/job.yaml" in str(info.value)
