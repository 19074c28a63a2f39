"""deploy/kubernetes/overlays/s3: the archive, the runs' data and the model artifacts on
S3, the service and the trainer Jobs reading credentials from one Secret, commits made
safe for several writers, and otherwise the base's configuration and Job template (the
overlay replaces both files whole, so they are compared here). The overlay's rendering,
schemas, lockdown and Roles are checked with every tree in test_kustomize.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from service.errors import ConfigError
from tests.unit.deploy.support import BASE, OVERLAYS, find, load_yaml
from tests.unit.deploy.test_kustomize import objects, pod_specs, rendered_config

S3 = OVERLAYS / "s3"
SECRET = "driftwatch-s3"
# The keys the overlay changes; everything else is the base's.
STORAGE_KEYS = {("archive",), ("retrain", "artifacts_uri"), ("retrain", "data_uri")}


def without(raw: dict[str, Any], keys: set[tuple[str, ...]]) -> dict[str, Any]:
    out = yaml.safe_load(yaml.safe_dump(raw))
    for key in keys:
        node = out
        for part in key[:-1]:
            node = node[part]
        node.pop(key[-1], None)
    assert isinstance(out, dict)
    return out


def test_the_archive_runs_and_artifacts_are_on_s3_with_conditional_commits(
    tmp_path: Path,
) -> None:
    cfg, env = rendered_config(objects("s3"), tmp_path)
    assert cfg.archive.uri.startswith("s3://")
    assert (cfg.retrain.data_uri or "").startswith("s3://")
    assert cfg.retrain.artifacts_uri.startswith("s3://")
    assert dict(cfg.archive.storage_options) == {"conditional_put": "etag"}
    # The credentials reach the process from the Secret, not from the file.
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env.keys()
    assert "AWS_SECRET_ACCESS_KEY" not in (S3 / "config.yaml").read_text(encoding="utf-8")


def test_the_config_refuses_what_would_make_s3_commits_unsafe(tmp_path: Path) -> None:
    raw = load_yaml(S3 / "config.yaml")
    raw["archive"]["storage_options"] = {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    changed = tmp_path / "config.yaml"
    changed.write_text(yaml.safe_dump(raw), encoding="utf-8")
    objs = objects("s3")
    config_map = next(o for o in objs if o["metadata"]["name"].startswith("driftwatch-config"))
    config_map["data"]["config.yaml"] = changed.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="AWS_S3_ALLOW_UNSAFE_RENAME"):
        rendered_config(objs, tmp_path)


def test_the_configuration_is_the_bases_but_for_storage() -> None:
    base, s3 = load_yaml(BASE / "config.yaml"), load_yaml(S3 / "config.yaml")
    assert without(s3, STORAGE_KEYS) == without(base, STORAGE_KEYS)


def test_service_and_trainer_read_the_s3_secret_and_the_job_mounts_no_claim() -> None:
    objs = objects("s3")
    specs = pod_specs(objs)
    deployment = specs["deployment"]
    for container in [*deployment["initContainers"], *deployment["containers"]]:
        assert container["envFrom"] == [{"secretRef": {"name": SECRET}}], container["name"]
    job = specs["trainer job"]
    assert job["containers"][0]["envFrom"] == [{"secretRef": {"name": SECRET}}]
    assert not [v for v in job["volumes"] if "persistentVolumeClaim" in v]
    # The Secret is the operator's to create: no value of it is in the repository.
    assert not [o for o in objs if o["kind"] == "Secret"]


def test_the_job_template_is_the_bases_but_for_credentials_and_the_claim() -> None:
    base = load_yaml(BASE / "trainer-job.yaml")
    s3 = load_yaml(S3 / "trainer-job.yaml")
    s3_spec, base_spec = s3["spec"]["template"]["spec"], base["spec"]["template"]["spec"]
    del s3_spec["containers"][0]["envFrom"]
    claims = {v["name"] for v in base_spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"data"}
    base_spec["volumes"] = [v for v in base_spec["volumes"] if v["name"] not in claims]
    for container in base_spec["containers"]:
        container["volumeMounts"] = [
            m for m in container["volumeMounts"] if m["name"] not in claims
        ]
    assert s3 == base


def test_the_rendered_trainer_job_is_the_overlays_file() -> None:
    rendered = yaml.safe_load(find(objects("s3"), "ConfigMap", "trainer-job")["data"]["job.yaml"])
    assert rendered == load_yaml(S3 / "trainer-job.yaml")
