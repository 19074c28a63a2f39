"""deploy/kubernetes: the base and every router overlay render with a real kustomize,
each object validates against the official schemas (the CRD-based ones structurally),
the pod runs locked down, the Roles are exactly the ones the RBAC tests pin against the
calls the code makes, and the rendered configuration loads."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from service.config import load_config
from service.config.settings import Config
from tests.unit.deploy.support import (
    BASE,
    KUBERNETES_VERSION,
    OVERLAYS,
    ROUTERS,
    STORES,
    config_key,
    find,
    load_yaml,
    render,
)

TREES = ("base", *ROUTERS, *STORES)
CUSTOM = {"monitoring.coreos.com/v1"}  # the Prometheus Operator's CRDs
# What a Secret would hold, for loading the configuration as the pod would.
SECRET_VALUES = {
    "database-url": "postgresql+psycopg://driftwatch:pw@postgres:5432/driftwatch",
    "session-secret": "s" * 64,
    "pagerduty-routing-key": "routing-key",
}
# The s3 overlay's Secret driftwatch-s3, read whole with envFrom.
ENV_FROM_SECRETS = {
    "driftwatch-s3": {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-central-1",
    },
}


def directory(tree: str) -> Path:
    return BASE if tree == "base" else OVERLAYS / tree


@functools.cache
def rendered(tree: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(directory(tree)))


def objects(tree: str) -> list[dict[str, Any]]:
    """A copy of the tree's objects, for a test to change."""
    return copy.deepcopy(list(rendered(tree)))


def trainer_job(objs: list[dict[str, Any]]) -> dict[str, Any]:
    job = yaml.safe_load(find(objs, "ConfigMap", "trainer-job")["data"]["job.yaml"])
    assert isinstance(job, dict)
    return job


def pod_specs(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    deployment = find(objs, "Deployment", "driftwatch")
    return {
        "deployment": deployment["spec"]["template"]["spec"],
        "trainer job": trainer_job(objs)["spec"]["template"]["spec"],
    }


@pytest.mark.parametrize("tree", TREES)
def test_every_object_validates_against_the_official_schemas(tree: str) -> None:
    objs = objects(tree)
    for obj in [*objs, trainer_job(objs)]:
        if obj["apiVersion"] in CUSTOM:
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_every_overlay_is_rendered_and_checked() -> None:
    assert sorted(p.name for p in OVERLAYS.iterdir() if p.is_dir()) == sorted(TREES[1:])


def test_the_validator_refuses_a_misspelt_field() -> None:
    deployment = find(objects("base"), "Deployment", "driftwatch")
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("tree", TREES)
def test_every_object_is_namespaced_and_labelled(tree: str) -> None:
    objs = objects(tree)
    assert {o["kind"] for o in objs} >= {
        "Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment",
        "Service", "PodDisruptionBudget", "NetworkPolicy", "PersistentVolumeClaim",
        "ServiceMonitor", "PrometheusRule",
    }  # fmt: skip
    assert not {o["kind"] for o in objs} & {"ClusterRole", "ClusterRoleBinding", "Secret"}
    for obj in objs:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace"), f"{obj['kind']} {obj['metadata']['name']}"
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "driftwatch"


def lockdown_problems(spec: dict[str, Any]) -> list[str]:
    """How a pod spec falls short of running locked down."""
    problems = []
    pod = spec.get("securityContext", {})
    if pod.get("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if pod.get("seccompProfile") != {"type": "RuntimeDefault"}:
        problems.append("no RuntimeDefault seccomp profile")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        name = container["name"]
        security = container.get("securityContext", {})
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: the root filesystem is writable")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: privilege escalation is allowed")
        if security.get("capabilities") != {"drop": ["ALL"]}:
            problems.append(f"{name}: capabilities are not all dropped")
        resources = container.get("resources", {})
        if not (resources.get("requests") and resources.get("limits")):
            problems.append(f"{name}: no requests and limits")
        for mount in container.get("volumeMounts", []):
            if mount.get("readOnly", False):
                continue
            # Writable: the data claim and an emptyDir for /tmp (HOME, TMPDIR, caches).
            volume = volumes[mount["name"]]
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if ("emptyDir" in volume, mount["mountPath"]) != (True, "/tmp") and (
                claim,
                mount["mountPath"],
            ) != ("driftwatch-data", "/var/lib/driftwatch"):
                problems.append(f"{name}: writable {mount['mountPath']}")
    return problems


@pytest.mark.parametrize("tree", TREES)
def test_the_pods_run_locked_down(tree: str) -> None:
    for what, spec in pod_specs(objects(tree)).items():
        assert lockdown_problems(spec) == [], what


def test_the_lockdown_check_finds_a_writable_root_and_an_extra_volume() -> None:
    spec = pod_specs(objects("base"))["deployment"]
    container = spec["containers"][0]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    spec["volumes"].append({"name": "cache", "emptyDir": {}})
    container["volumeMounts"].append({"name": "cache", "mountPath": "/var/cache"})
    assert lockdown_problems(spec) == [
        "driftwatch: the root filesystem is writable",
        "driftwatch: writable /var/cache",
    ]


def rendered_config(objs: list[dict[str, Any]], tmp_path: Path) -> tuple[Config, dict[str, str]]:
    """The configuration the service container loads: the ConfigMap's file with the
    container's environment, Secret references filled in."""
    deployment = find(objs, "Deployment", "driftwatch")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env: dict[str, str] = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            env[var["name"]] = SECRET_VALUES[var["valueFrom"]["secretKeyRef"]["key"]]
    for source in container.get("envFrom", []):
        env.update(ENV_FROM_SECRETS[source["secretRef"]["name"]])
    config_map = next(
        o
        for o in objs
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("driftwatch-config")
    )
    assert env["DRIFTWATCH_CONFIG"] == f"{mounts['config']}/config.yaml"
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"], encoding="utf-8")
    raw = yaml.safe_load(config_map["data"]["config.yaml"])
    problems = [config_key(n, raw) for n in env if n.startswith("DRIFTWATCH_") and "__" in n]
    assert [p for p in problems if p] == []
    return load_config(path, env), env


@pytest.mark.parametrize("tree", TREES)
def test_the_rendered_configuration_loads(tree: str, tmp_path: Path) -> None:
    objs = objects(tree)
    cfg, _ = rendered_config(objs, tmp_path)
    deployment = find(objs, "Deployment", "driftwatch")
    namespace = deployment["metadata"]["namespace"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": cfg.api.port, "metrics": cfg.metrics.port}
    assert cfg.api.host == cfg.metrics.host == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert cfg.leader.backend == "kubernetes"
    assert cfg.retrain.executor == "kubernetes" and cfg.retrain.kubernetes is not None
    assert cfg.retrain.kubernetes.namespace == namespace
    name, _, key = (cfg.retrain.kubernetes.template_configmap or "").partition("/")
    assert key in find(objs, "ConfigMap", name)["data"]
    # Every token file is mounted from the Secret.
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for token in cfg.api.tokens:
        mount = next(m for m in container["volumeMounts"]
                     if str(token.token_file).startswith(m["mountPath"] + "/"))  # fmt: skip
        items = [i["path"] for i in volumes[mount["name"]]["secret"]["items"]]
        assert str(token.token_file).removeprefix(mount["mountPath"] + "/") in items
    rollout = cfg.models["fraud"].rollout
    assert rollout.router == (tree if tree in ROUTERS else "manual")
    assert rollout.enabled is (tree in ROUTERS)
    if tree in ROUTERS:
        # The router's settings build, and reach the API from inside the pod.
        section = getattr(rollout.sections(), tree.replace("-", "_"))
        assert section is not None
        assert getattr(rollout, tree.replace("-", "_")).in_cluster is True


def test_an_unknown_variable_in_an_overlay_is_found(tmp_path: Path) -> None:
    objs = objects("istio")
    container = find(objs, "Deployment", "driftwatch")["spec"]["template"]["spec"]["containers"][0]
    container["env"].append(
        {"name": "DRIFTWATCH_MODELS__FRAUD__ROLLOUT__ISTIO__HOSTS", "value": "x"}
    )
    with pytest.raises(AssertionError, match=r"rollout\.istio\.hosts is not a configuration key"):
        rendered_config(objs, tmp_path)


def rules(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in role["rules"]]


@pytest.mark.parametrize("tree", TREES)
def test_the_roles_are_those_the_rbac_tests_pin(tree: str, tmp_path: Path) -> None:
    """base/role.yaml is checked against the executor's and the elector's calls
    (tests/integration/test_k8s_rbac.py), each overlay's role.yaml against its router's
    (tests/unit/retrain/rollout/test_router_roles.py, test_replicas_rbac.py): the
    rendered Roles must be exactly those, the router's only in its overlay, each bound to
    driftwatch's ServiceAccount, granting the objects the configuration names."""
    objs = objects(tree)
    roles = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Role"}
    sources = [load_yaml(BASE / "role.yaml")]
    if tree in ROUTERS:
        sources.append(load_yaml(OVERLAYS / tree / "role.yaml"))
    assert sorted(roles) == sorted(s["metadata"]["name"] for s in sources)
    for source in sources:
        assert rules(roles[source["metadata"]["name"]]) == rules(source)
    bindings = [o for o in objs if o["kind"] == "RoleBinding"]
    namespace = find(objs, "ServiceAccount", "driftwatch")["metadata"]["namespace"]
    assert sorted(b["roleRef"]["name"] for b in bindings) == sorted(roles)
    for binding in bindings:
        role = roles[binding["roleRef"]["name"]]
        assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "driftwatch", "namespace": namespace}
        ]
    cfg, _ = rendered_config(objs, tmp_path)
    named = {n for r in rules(roles["driftwatch-retrain"]) for n in r.get("resourceNames", [])}
    assert cfg.retrain.kubernetes is not None
    assert named == {cfg.leader.lease_name, cfg.retrain.kubernetes.template_configmap.split("/")[0]}
    if tree in ROUTERS:
        router = roles[sources[1]["metadata"]["name"]]
        section = getattr(cfg.models["fraud"].rollout, tree.replace("-", "_"))
        assert router["metadata"]["namespace"] == section.namespace
        granted = {n for r in rules(router) for n in r["resourceNames"]}
        assert granted == {getattr(section, f) for f in NAMED_OBJECTS[tree]}


# The fields of each router's settings that name the objects its Role grants.
NAMED_OBJECTS = {
    "gateway-api": ("route",),
    "istio": ("virtual_service",),
    "kserve": ("inference_service",),
    "replicas": ("stable_deployment", "canary_deployment"),
}


def test_the_namespace_is_restricted_and_the_budget_keeps_a_replica() -> None:
    objs = objects("base")
    labels = find(objs, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = find(objs, "Deployment", "driftwatch")
    selector = deployment["spec"]["selector"]["matchLabels"]
    budget = find(objs, "PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"] == selector
    assert 0 < budget["minAvailable"] < deployment["spec"]["replicas"]
    service = find(objs, "Service", "driftwatch")["spec"]
    assert service["selector"] == selector
    policy = find(objs, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == selector
    # The metrics port has no authentication: only the monitoring namespace reaches it.
    metrics = [r for r in policy["ingress"] if {"port": "metrics"} in r["ports"]]
    assert len(metrics) == 1 and metrics[0]["from"]


def test_the_service_monitor_scrapes_the_metrics_port() -> None:
    objs = objects("base")
    monitor = find(objs, "ServiceMonitor")
    service = find(objs, "Service", "driftwatch")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert re.fullmatch(r"\d+[smh]", endpoint["interval"])


@pytest.mark.parametrize("path", [BASE / "trainer-job.yaml", OVERLAYS / "s3" / "trainer-job.yaml"])
def test_the_trainer_runs_a_thread_per_requested_core(path: Path) -> None:
    (container,) = yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["resources"]["requests"]["cpu"]
    refs = {e["name"]: e["valueFrom"]["resourceFieldRef"] for e in container["env"]}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        # The downward API rounds a CPU quantity up at divisor 1: 500m gives 1 thread.
        assert refs[name] == {
            "containerName": container["name"], "resource": "requests.cpu", "divisor": "1"
        }  # fmt: skip


def test_the_trainer_job_has_a_gpu_variant_in_comments() -> None:
    text = (BASE / "trainer-job.yaml").read_text(encoding="utf-8")
    assert re.search(r"^\s*#.*nvidia\.com/gpu: 1", text, re.M)
    assert re.search(r"^\s*#\s*tolerations:", text, re.M)
    assert re.search(r"^\s*#\s*nodeSelector:", text, re.M)
    job = yaml.safe_load(text)
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python", "-m", "retrain.trainer"
    ]  # fmt: skip
