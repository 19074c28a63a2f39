"""docker-compose.yml: pinned images, a healthcheck on every service and dependencies on
health, Kafka in KRaft mode, driftwatch migrating on start, every DRIFTWATCH_* variable a
real configuration key (the configuration loads as the container would load it), and
Prometheus and Grafana wired to driftwatch and to the shared dashboard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from service.config import load_config
from service.config.settings import Config
from tests.unit.deploy.support import ROOT, config_key, interpolate, load_yaml
from tests.unit.deploy.test_dockerfile import stages

COMPOSE = ROOT / "docker-compose.yml"
# The s3 profile's override: driftwatch and the model server on the profile's MinIO.
S3_OVERRIDE = ROOT / "deploy" / "compose" / "s3.yaml"
# MinIO publishes no semantic versions: its immutable release tags carry the build time.
MINIO_RELEASE = r"RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z"


def services() -> dict[str, dict[str, Any]]:
    loaded = load_yaml(COMPOSE)["services"]
    assert isinstance(loaded, dict)
    return loaded


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (or volume name) of the service's volumes."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def host_path(service: dict[str, Any], container_path: str) -> Path:
    for target, source in mounts(service).items():
        if container_path == target or container_path.startswith(target + "/"):
            assert source.startswith("./"), f"{container_path} is on volume {source}"
            return (
                ROOT / source.removeprefix("./") / container_path.removeprefix(target).lstrip("/")
            )
    raise AssertionError(f"{container_path} is not mounted")


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment with compose's defaults substituted."""
    return {k: interpolate(str(v), {}) for k, v in service.get("environment", {}).items()}


def with_s3(name: str) -> dict[str, Any]:
    """The service as ``-f docker-compose.yml -f deploy/compose/s3.yaml`` merges it:
    mappings (environment, depends_on) key by key."""
    service = dict(services()[name])
    override = load_yaml(S3_OVERRIDE)["services"].get(name, {})
    for key, value in override.items():
        service[key] = {**service.get(key, {}), **value} if isinstance(value, dict) else value
    return service


def jobs(all_services: dict[str, dict[str, Any]]) -> set[str]:
    """One-shot services (``restart: "no"``): waited for to complete, not to be healthy."""
    return {n for n, s in all_services.items() if s.get("restart") == "no"}


def loaded_config(name: str, s3: bool = False) -> tuple[Config, dict[str, str]]:
    service = with_s3(name) if s3 else services()[name]
    env = environment(service)
    path = host_path(service, env["DRIFTWATCH_CONFIG"])
    raw = load_yaml(path)
    problems = [config_key(n, raw) for n in env if n.startswith("DRIFTWATCH_") and "__" in n]
    assert [p for p in problems if p] == []
    return load_config(path, env), env


def test_every_image_is_pinned_by_tag() -> None:
    targets = set(stages())
    for name, service in services().items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        pinned = rf"v?\d+\.\d+(\.\d+)?|{MINIO_RELEASE}"
        assert repository and re.fullmatch(pinned, tag), f"{name}: {image}"
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile"
            assert service["build"]["target"] in targets, name


@pytest.mark.parametrize("s3", [False, True], ids=["default", "s3"])
def test_every_service_is_health_checked_and_waited_for_healthy(s3: bool) -> None:
    all_services = services()
    if s3:
        all_services.update({n: with_s3(n) for n in load_yaml(S3_OVERRIDE)["services"]})
    one_shot = jobs(all_services)
    for name, service in all_services.items():
        if name not in one_shot:
            check = service["healthcheck"]
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name
            assert check["interval"] and check["retries"] >= 3, name
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in all_services, f"{name} -> {dependency}"
            wanted = (
                "service_completed_successfully" if dependency in one_shot else "service_healthy"
            )
            assert how == {"condition": wanted}, f"{name} -> {dependency}"
    # Everything but the three stores waits for something.
    waiting = {n for n, s in all_services.items() if s.get("depends_on")}
    assert waiting == set(all_services) - {"kafka", "postgres", "minio"}


def test_minio_and_its_bucket_job_start_with_the_s3_profile_only() -> None:
    all_services = services()
    profiled = {n for n, s in all_services.items() if s.get("profiles")}
    assert profiled == {"minio", "minio-bucket"}
    assert all(all_services[n]["profiles"] == ["s3"] for n in profiled)
    assert jobs(all_services) == {"minio-bucket"}
    # Services without the profile must not need it, or a plain `up` would fail.
    for name in set(all_services) - profiled:
        assert not set(all_services[name].get("depends_on", {})) & profiled, name


@pytest.mark.parametrize("name", ["driftwatch", "model-server"])
def test_the_s3_override_puts_storage_in_the_bucket_the_job_creates(name: str) -> None:
    cfg, env = loaded_config(name, s3=True)
    script = " ".join(services()["minio-bucket"]["command"])
    made = re.search(r"mc mb --ignore-existing local/(\S+)", script)
    assert made is not None
    for uri in (cfg.archive.uri, cfg.retrain.artifacts_uri, cfg.retrain.data_uri or ""):
        assert uri.startswith(f"s3://{made.group(1)}/"), uri
    minio = services()["minio"]
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert "9000:9000" in minio["ports"] and env["AWS_ALLOW_HTTP"] == "true"
    credentials = environment(minio)
    assert env["AWS_ACCESS_KEY_ID"] == credentials["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == credentials["MINIO_ROOT_PASSWORD"]
    # A run of the local executor gets the same variables.
    assert {n for n in env if n.startswith("AWS_")} <= set(cfg.models["fraud"].retrain.pass_env)


def test_kafka_runs_in_kraft_mode() -> None:
    kafka = services()["kafka"]["environment"]
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    for service in services().values():
        assert "zookeeper" not in service["image"]
        assert not [k for k in service.get("environment", {}) if "ZOOKEEPER" in k]


def test_driftwatch_migrates_then_runs_and_checks_both_probes() -> None:
    service = services()["driftwatch"]
    script = " ".join(service["entrypoint"])
    assert re.search(r"driftwatch db upgrade && exec driftwatch run", script)
    probe = " ".join(service["healthcheck"]["test"])
    cfg, _ = loaded_config("driftwatch")
    assert f"http://127.0.0.1:{cfg.api.port}" in probe
    assert "/healthz" in probe and "/readyz" in probe
    published = {p.split(":")[1] for p in service["ports"]}
    assert published == {str(cfg.api.port), str(cfg.metrics.port)}
    assert cfg.api.host == cfg.metrics.host == "0.0.0.0"
    assert cfg.database.url.startswith("postgresql+psycopg://driftwatch:")
    assert "@postgres:5432/" in cfg.database.url
    assert cfg.kafka.bootstrap_servers == ["kafka:9092"]
    # The overview page and the API need a token to sign in with.
    assert any("read" in token.scopes for token in cfg.api.tokens)


@pytest.mark.parametrize("s3", [False, True], ids=["default", "s3"])
@pytest.mark.parametrize("name", ["driftwatch", "model-server"])
def test_every_driftwatch_variable_is_a_configuration_key(name: str, s3: bool) -> None:
    _, env = loaded_config(name, s3)
    assert [n for n in env if n.startswith("DRIFTWATCH_")]


def test_a_misspelt_variable_is_found() -> None:
    raw = load_yaml(ROOT / "deploy" / "compose" / "driftwatch.yaml")
    assert config_key("DRIFTWATCH_DATABASE__URL", raw) is None
    assert "database.uri is not a configuration key" in str(
        config_key("DRIFTWATCH_DATABASE__URI", raw)
    )
    assert "models.payments is not in the configuration file" in str(
        config_key("DRIFTWATCH_MODELS__PAYMENTS__WINDOW", raw)
    )
    assert "is a section" in str(config_key("DRIFTWATCH_API", raw))


def test_the_model_server_serves_the_configured_model() -> None:
    service = services()["model-server"]
    script = " ".join(service["command"])
    assert "python -m service.dev.serving --config /etc/driftwatch/config.yaml" in script
    assert "driftwatch reference build --model fraud" in script
    # The reference is the served scenario's pre-drift rows, scored by the champion the
    # server serves (its default path): another scenario's rows would judge every window
    # drifted from the first.
    assert "--scenario concept" in script and "from service.dev.concept import" in script
    assert "champion_artifact(Path('driftwatch-models/fraud/champion.skops')" in script
    assert "--champion" not in script
    router_file = re.search(r"--router-file (\S+)", script)
    assert router_file is not None
    # The router file's directory is a volume; the healthcheck waits for the file.
    assert str(Path(router_file.group(1)).parent) in mounts(service)
    assert router_file.group(1) in service["healthcheck"]["test"]
    cfg, _ = loaded_config("model-server")
    assert "fraud" in cfg.models


def test_prometheus_scrapes_driftwatch_and_grafana_shows_the_dashboard() -> None:
    all_services = services()
    prometheus = all_services["prometheus"]
    scrape = load_yaml(host_path(prometheus, "/etc/prometheus/prometheus.yml"))
    cfg, _ = loaded_config("driftwatch")
    targets = [t for job in scrape["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]]  # fmt: skip
    assert targets == [f"driftwatch:{cfg.metrics.port}"]
    grafana = all_services["grafana"]
    sources = load_yaml(host_path(grafana, "/etc/grafana/provisioning/datasources/prometheus.yaml"))
    assert [d["url"] for d in sources["datasources"]] == ["http://prometheus:9090"]
    providers = load_yaml(
        host_path(grafana, "/etc/grafana/provisioning/dashboards/driftwatch.yaml")
    )
    (folder,) = [p["options"]["path"] for p in providers["providers"]]
    dashboards = [t for t in mounts(grafana) if t.startswith(folder + "/")]
    assert [host_path(grafana, d) for d in dashboards] == [
        ROOT / "deploy" / "kubernetes" / "base" / "grafana" / "driftwatch.json"
    ]
