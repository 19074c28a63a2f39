"""``driftwatch models register`` refuses an artifact no job could load: types beyond
the trusted ones (naming them and the key to set), a damaged file, a wrong sha256."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
import yaml

from db.registry import RegistryRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.artifacts import dump_model, sha256_hex
from service.cli import main
from service.config import load_config
from tests.unit.retrain.champions import FOREST_TYPES, forest_champion
from tests.unit.service.test_cli_retrain import write_config


@pytest.fixture(autouse=True)
def _no_driftwatch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def cfg(sqlite_url: str, tmp_path: Path) -> str:
    return write_config(sqlite_url, tmp_path)


def register(cfg: str, uri: str, *extra: str) -> int:
    return main(
        ["models", "register", "--config", cfg, "--model", "fraud", "--version", "v1",
         "--uri", uri, *extra]
    )  # fmt: skip


def trust(cfg: str, types: list[str]) -> None:
    raw = yaml.safe_load(Path(cfg).read_text(encoding="utf-8"))
    raw["models"]["fraud"]["retrain"]["trusted_types"] = types
    Path(cfg).write_text(yaml.safe_dump(raw), encoding="utf-8")


def versions(cfg: str) -> list[tuple[str, str]]:
    sessions = make_session_factory(make_engine(load_config(cfg, env={}).database.url))
    with transaction(sessions) as s:
        return [(v.version, v.stage) for v in RegistryRepository(s).versions("fraud")]


def test_a_champion_needing_more_types_is_refused_naming_them_and_the_key(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, _ = forest_champion(tmp_path / "forest.skops")
    assert register(cfg, uri) == 1
    err = capsys.readouterr().err
    named = f"names {len(FOREST_TYPES)} types that jobs do not trust: {', '.join(FOREST_TYPES)};"
    assert named in err
    assert "list them in models.fraud.retrain.trusted_types and register again" in err
    assert versions(cfg) == []


def test_the_champion_is_registered_once_the_key_lists_its_types(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, sha256 = forest_champion(tmp_path / "forest.skops")
    trust(cfg, list(FOREST_TYPES[:-1]))
    assert register(cfg, uri) == 1  # one short: still refused, naming the one left
    assert "names 1 types that jobs do not trust: sklearn.tree._tree.Tree;" in (
        capsys.readouterr().err
    )
    trust(cfg, list(FOREST_TYPES))
    assert register(cfg, uri, "--sha256", sha256.upper()) == 0
    assert capsys.readouterr().out == f"fraud v1: production, sha256 {sha256}\n"
    assert versions(cfg) == [("v1", "production")]


def test_a_sha256_that_is_not_the_artifacts_is_refused(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(dump_model({"weights": [1.0, 2.0]}))
    assert register(cfg, str(path), "--sha256", "0" * 64) == 1
    actual = sha256_hex(path.read_bytes())
    assert f"--sha256: {'0' * 64} is not the sha256 of {path} ({actual})" in (
        capsys.readouterr().err
    )
    assert versions(cfg) == []


def without_arrays(data: bytes) -> bytes:
    """The skops file with its schema intact and the arrays it refers to gone."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if not name.endswith(".npy"):
                dst.writestr(name, src.read(name))
    return out.getvalue()


@pytest.mark.parametrize("damage", ["not a zip", "arrays gone"])
def test_a_damaged_artifact_is_refused(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    data = dump_model(StandardScaler().fit(np.arange(20.0).reshape(10, 2)))
    path = tmp_path / "model.skops"
    path.write_bytes(data[: len(data) // 2] if damage == "not a zip" else without_arrays(data))
    assert register(cfg, str(path)) == 1
    err = capsys.readouterr().err
    assert "--uri: refused: " in err
    assert ("not a skops file" if damage == "not a zip" else f"cannot load {path}") in err
    assert versions(cfg) == []
