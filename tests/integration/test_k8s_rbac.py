"""deploy/kubernetes/base/: the Role grants exactly what the executor and leader election
call, and every manifest of the built-in kinds validates against the official Kubernetes
OpenAPI schemas (tests/unit/deploy/test_kustomize.py validates the rendered base and
overlays, the Prometheus Operator's objects included)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from retrain.executors import JobPhase, JobSpec, Mode, make_executor
from retrain.executors.kubernetes import KubernetesExecutor
from service.leader.kubernetes import LeaseElector
from tests.harness.k8s.cluster import (
    NAMESPACE,
    api_client,
    cluster,
    python_job,
    until,
    write_kubeconfig,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "base"
# Not Kubernetes objects (kustomize's and driftwatch's configuration), or the Prometheus
# Operator's, which have no official schema.
NOT_BUILT_IN = ("kustomization.yaml", "config.yaml", "servicemonitor.yaml", "prometheusrule.yaml")
KUBERNETES_VERSION = "1.33"


def manifests() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name not in NOT_BUILT_IN)


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_manifest_validates_against_the_official_schema(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_an_invalid_manifest_is_refused_by_the_validator() -> None:
    role = yaml.safe_load((DEPLOY / "role.yaml").read_text(encoding="utf-8"))
    role["rules"][0]["verbz"] = role["rules"][0].pop("verbs")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, KUBERNETES_VERSION, strict=True)


@dataclass(frozen=True)
class Cluster:
    namespace: str
    kubeconfig: str
    template: str | None = None
    template_configmap: str | None = "trainer-job/job.yaml"
    context: str | None = None
    in_cluster: bool = False
    result_path: str | None = None
    ttl_seconds: int = 3600
    resync: float = 300.0
    request_timeout: float = 5.0


@dataclass(frozen=True)
class Settings:
    workdir: str
    command: tuple[str, ...]
    kubernetes: Cluster


def granted(role: dict[str, object]) -> set[tuple[str, str, str]]:
    rules = role["rules"]
    assert isinstance(rules, list)
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_role_grants_exactly_what_the_executor_and_the_elector_call(tmp_path: Path) -> None:
    role = yaml.safe_load((DEPLOY / "role.yaml").read_text(encoding="utf-8"))
    with cluster(tmp_path, role=role) as (emulator, _):
        template = python_job("import sys; print('boom'); sys.exit(2)")
        emulator.store.create(
            "configmaps",
            NAMESPACE,
            {"metadata": {"name": "trainer-job"}, "data": {"job.yaml": yaml.safe_dump(template)}},
        )
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", emulator.url)
        settings = Settings(str(tmp_path), ("python",), Cluster(NAMESPACE, str(kubeconfig)))
        executor = make_executor("kubernetes", settings)
        assert isinstance(executor, KubernetesExecutor)
        spec = JobSpec(3, "fraud", Mode.TRAIN, "d", "o", timedelta(minutes=5))
        executor.launch(spec)
        status = until(lambda: (s := executor.observe(spec)).phase is JobPhase.FAILED and s)
        assert status.log_tail == "boom\n"  # the log was read
        executor.cancel(spec)
        until(lambda: ("batch", "jobs", "watch") in emulator.calls)
        executor.close()
        elector = LeaseElector(
            api_client(emulator.url),
            name="driftwatch",
            namespace=NAMESPACE,
            identity="replica-a",
            lease_duration=3.0,
            renew_deadline=2.0,
            retry_period=1.0,
            request_timeout=1.0,
        )
        elector.start()  # creates the Lease, reads and renews it
        until(lambda: emulator.count("update", "leases") >= 1)
        elector.stop()
        assert [entry for entry in emulator.log if entry[3] == 403] == []
        assert emulator.calls == granted(role)


def test_the_role_grants_named_objects_by_name_only(tmp_path: Path) -> None:
    """The ConfigMap and the Lease driftwatch uses, not every ConfigMap (credentials of
    other apps) or Lease (other controllers' leadership) of the namespace."""
    role = yaml.safe_load((DEPLOY / "role.yaml").read_text(encoding="utf-8"))
    with cluster(tmp_path, role=role, kubelet=False) as (emulator, _):
        for name in ("trainer-job", "db-credentials"):
            emulator.store.create("configmaps", NAMESPACE, {"metadata": {"name": name}})
        core = client.CoreV1Api(api_client(emulator.url))
        assert core.read_namespaced_config_map("trainer-job", NAMESPACE).metadata.name
        with pytest.raises(ApiException) as refused:
            core.read_namespaced_config_map("db-credentials", NAMESPACE)
        assert refused.value.status == 403
        leases = client.CoordinationV1Api(api_client(emulator.url))
        for name in ("driftwatch", "kube-scheduler"):  # create is not limited by name
            leases.create_namespaced_lease(NAMESPACE, {"metadata": {"name": name}})
        lease = leases.read_namespaced_lease("driftwatch", NAMESPACE)
        leases.replace_namespaced_lease("driftwatch", NAMESPACE, lease)
        for call in (
            lambda: leases.read_namespaced_lease("kube-scheduler", NAMESPACE),
            lambda: leases.replace_namespaced_lease("kube-scheduler", NAMESPACE, lease),
        ):
            with pytest.raises(ApiException) as refused:
                call()
            assert refused.value.status == 403
