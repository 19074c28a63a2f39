"""The archive's configuration: defaults, durations, per-model switch, reserved names."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from db.archive import Kind
from tests.unit.service.test_config import BASE, load, problems


def test_defaults_and_overrides(tmp_path: Path) -> None:
    cfg = load(tmp_path, BASE, {})
    assert (cfg.archive.uri, cfg.archive.retention) == ("./driftwatch-archive", 90 * 86400.0)
    assert cfg.models["fraud"].archive.enabled
    assert cfg.archive.settings().append_workers == 1  # a local directory
    assert cfg.archive.settings().table_properties()["delta.logRetentionDuration"] == (
        "interval 600 seconds"
    )
    env = {
        "DRIFTWATCH_ARCHIVE__URI": "s3://bucket/archive/",
        "DRIFTWATCH_ARCHIVE__RETENTION": "30d",
        "DRIFTWATCH_ARCHIVE__LOG_RETENTION": "1h",
        "DRIFTWATCH_ARCHIVE__APPEND_WORKERS": "2",
        "DRIFTWATCH_MODELS__FRAUD__ARCHIVE__ENABLED": "false",
    }
    cfg = load(tmp_path, BASE, env)
    settings = cfg.archive.settings()
    assert settings.table_uri("fraud", Kind.LABELS) == "s3://bucket/archive/fraud/labels"
    assert settings.retention_seconds == 30 * 86400.0
    assert (settings.log_retention_seconds, settings.append_workers) == (3600.0, 2)
    del env["DRIFTWATCH_ARCHIVE__APPEND_WORKERS"]
    assert load(tmp_path, BASE, env).archive.settings().append_workers == 8  # object storage
    assert not cfg.models["fraud"].archive.enabled


def test_bad_values_name_the_key(tmp_path: Path) -> None:
    raw = copy.deepcopy(BASE)
    raw["archive"] = {
        "retention": "forever",
        "typo": 1,
        "log_retention": "30s",
        "append_workers": 0,
    }
    raw["models"]["fraud"]["features"]["offset"] = {"type": "numerical"}
    found = problems(tmp_path, raw)
    assert any(p.startswith("config: archive.retention:") for p in found), found
    assert any(p.startswith("config: archive.typo:") for p in found), found
    assert any(p.startswith("config: archive.log_retention:") for p in found), found
    assert any(p.startswith("config: archive.append_workers:") for p in found), found
    reserved = [p for p in found if p.startswith("config: models.fraud.features:")]
    assert reserved and "['offset'] are reserved" in reserved[0], found


def test_driftwatch_run_maintains_the_archive_only_when_a_model_is_archived(
    tmp_path: Path,
) -> None:
    from consumers.archive import NoArchive
    from service.wiring.monitoring import archive_maintenance, build_archive

    raw = copy.deepcopy(BASE)
    raw["archive"] = {"uri": str(tmp_path / "archive"), "compact_interval": "10m"}
    cfg = load(tmp_path, raw, {})
    maintain = archive_maintenance(cfg)
    assert maintain is not None
    maintain()  # nothing archived yet: a run is a no-op, not an error
    assert build_archive(cfg, lambda: None).models == {"fraud"}

    raw["models"]["fraud"]["archive"] = {"enabled": False}
    cfg = load(tmp_path, raw, {})
    assert archive_maintenance(cfg) is None
    assert isinstance(build_archive(cfg, lambda: None), NoArchive)


def _archive(tmp_path: Path, archive: dict[str, object]) -> list[str]:
    raw = copy.deepcopy(BASE)
    raw["archive"] = archive
    return problems(tmp_path, raw)


def test_s3_settings_that_make_concurrent_commits_unsafe_are_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = {
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        "aws_s3_locking_provider": "dynamodb",
        "conditional_put": "disabled",
    }
    for key, value in cases.items():
        found = _archive(tmp_path, {"uri": "s3://b/a", "storage_options": {key: value}})
        assert any(p.startswith(f"config: archive.storage_options: {key}:") for p in found), found
    # The same options on a local archive mean nothing to deltalake: not refused.
    assert load(tmp_path, {**BASE, "archive": {"uri": "./a", "storage_options": cases}})
    monkeypatch.setenv("AWS_S3_ALLOW_UNSAFE_RENAME", "true")
    found = _archive(tmp_path, {"uri": "s3://b/a"})
    assert any("$AWS_S3_ALLOW_UNSAFE_RENAME is set" in p for p in found), found


def test_s3_archives_commit_with_conditional_put(tmp_path: Path) -> None:
    given = {"uri": "s3://b/a", "storage_options": {"AWS_REGION": "eu-west-1"}}
    cfg = load(tmp_path, {**BASE, "archive": given})
    options = cfg.archive.settings().storage_options
    assert options == {"AWS_REGION": "eu-west-1", "conditional_put": "etag"}
    cfg = load(
        tmp_path, {**BASE, "archive": {**given, "storage_options": {"aws_conditional_put": "ETag"}}}
    )
    assert cfg.archive.settings().storage_options == {"aws_conditional_put": "ETag"}


@pytest.mark.parametrize("key", ["AWS_SECRET_ACCESS_KEY", "aws_session_token", "token"])
def test_credentials_written_into_the_archive_config_are_refused_by_name(
    tmp_path: Path, key: str
) -> None:
    raw = {**BASE, "archive": {"uri": "s3://b/a", "storage_options": {key: "hunter2"}}}
    found = problems(tmp_path, raw)
    assert any(p.startswith(f"config: archive.storage_options: {key}:") for p in found), found
    assert not any("hunter2" in p for p in found), found
