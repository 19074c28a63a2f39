"""The archive's configuration: defaults, durations, per-model switch, reserved names."""

from __future__ import annotations

import copy
from pathlib import Path

from db.archive import Kind
from tests.unit.service.test_config import BASE, load, problems


def test_defaults_and_overrides(tmp_path: Path) -> None:
    cfg = load(tmp_path, BASE, {})
    assert (cfg.archive.uri, cfg.archive.retention) == ("./driftwatch-archive", 90 * 86400.0)
    assert cfg.models["fraud"].archive.enabled
    env = {
        "DRIFTWATCH_ARCHIVE__URI": "s3://bucket/archive/",
        "DRIFTWATCH_ARCHIVE__RETENTION": "30d",
        "DRIFTWATCH_MODELS__FRAUD__ARCHIVE__ENABLED": "false",
    }
    cfg = load(tmp_path, BASE, env)
    settings = cfg.archive.settings()
    assert settings.table_uri("fraud", Kind.LABELS) == "s3://bucket/archive/fraud/labels"
    assert settings.retention_seconds == 30 * 86400.0
    assert not cfg.models["fraud"].archive.enabled


def test_bad_values_name_the_key(tmp_path: Path) -> None:
    raw = copy.deepcopy(BASE)
    raw["archive"] = {"retention": "forever", "typo": 1}
    raw["models"]["fraud"]["features"]["offset"] = {"type": "numerical"}
    found = problems(tmp_path, raw)
    assert any(p.startswith("config: archive.retention:") for p in found), found
    assert any(p.startswith("config: archive.typo:") for p in found), found
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
