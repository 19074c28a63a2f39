"""The ``api`` section: each wrong setting names its key; token files are read at start-up."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from service.api.auth import TokenCheck, digest, load_tokens
from service.errors import ConfigError
from service.metrics import Metrics
from service.wiring.api import consumer_readiness
from tests.unit.service.test_config import BASE, problems
from tests.unit.service.test_config import load as load_cfg


def with_api(api: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw["api"] = api
    return raw


def test_api_is_off_by_default_and_metrics_open(tmp_path: Path) -> None:
    cfg = load_cfg(tmp_path)
    assert (cfg.api.port, cfg.api.metrics_open, cfg.api.tokens) == (0, True, [])
    assert cfg.api.cookie_secure is False


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        ({"port": 70000}, "config: api.port:"),
        ({"max_body_bytes": 0}, "config: api.max_body_bytes:"),
        ({"tokens": [{"name": "a", "scopes": ["read"]}]}, "config: api.tokens.0:"),
        (
            {"tokens": [{"name": "a", "sha256": "abc", "scopes": ["read"]}]},
            "config: api.tokens.0.sha256:",
        ),
        (
            {"tokens": [{"name": "a", "sha256": "0" * 64, "scopes": ["admin"]}]},
            "config: api.tokens.0.scopes.0:",
        ),
        ({"tokens": [{"name": "a", "sha256": "0" * 64, "scopes": []}]}, "config: api.tokens.0"),
        ({"prot": 8080}, "config: api.prot"),
        ({"cookie_secure": "sometimes"}, "config: api.cookie_secure:"),
    ],
)
def test_wrong_api_settings_name_the_key(
    tmp_path: Path, api: dict[str, Any], expected: str
) -> None:
    found = problems(tmp_path, with_api(api))
    assert any(line.startswith(expected) for line in found), found


def test_token_files_are_read_and_an_unreadable_one_names_the_key(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n", encoding="utf-8")
    tokens = [
        {"name": "ci", "sha256": digest("other").hex(), "scopes": ["read"]},
        {"name": "ops", "token_file": str(secret), "scopes": ["read", "write"]},
    ]
    cfg = load_cfg(tmp_path, with_api({"tokens": tokens}))
    check = TokenCheck(load_tokens(cfg.api.tokens))
    found = check.identify("s3cret")
    assert found is not None and found.name == "ops"
    assert check.identify("other") is not None and check.identify("s3cret ") is None
    missing = tmp_path / "gone"
    tokens[1]["token_file"] = str(missing)
    cfg = load_cfg(tmp_path, with_api({"tokens": tokens}))
    with pytest.raises(ConfigError) as info:
        load_tokens(cfg.api.tokens)
    assert str(info.value).startswith(f"config: api.tokens[1].token_file: cannot read {missing}")


def test_readiness_follows_the_healthy_gauge_the_partitions_and_the_stall_watch() -> None:
    metrics = Metrics()
    partitions: list[frozenset[int]] = [frozenset()]
    stall: list[str | None] = [None]
    problem = consumer_readiness(metrics.registry, lambda: partitions[0], lambda: stall[0])
    metrics.healthy.set(0)
    assert problem() == (
        "the consumer is stalled: Kafka, the database or the dead-letter topic is unreachable"
    )
    metrics.healthy.set(1)
    assert problem() == "the consumer has not seen the predictions topic's partitions yet"
    partitions[0] = frozenset({0, 1, 2})
    assert problem() is None
    stall[0] = "the consumer is stalled: predictions:0 made no progress for 300 s"
    assert problem() == stall[0]
