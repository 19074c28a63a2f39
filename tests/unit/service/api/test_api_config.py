"""The ``api`` section: each wrong setting names its key; token files are read at start-up."""

from __future__ import annotations

import copy
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import start_http_server

from service.api.auth import TokenCheck, digest, load_tokens
from service.errors import ConfigError
from service.metrics import Metrics
from service.wiring.api import consumer_readiness, session_secret
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


SECRET = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"api": {"port": 8080}}, "config: api: the API (api.port) serves"),
        ({"api": {"session_secret": "short"}}, "config: api.session_secret:"),
        (
            {"api": {"session_secret": SECRET, "session_secret_file": "/s"}},
            "config: api: give one of session_secret and session_secret_file",
        ),
        ({"api": {"login_attempts": 0}}, "config: api.login_attempts:"),
        ({"api": {"login_period": "soon"}}, "config: api.login_period:"),
        ({"api": {"login_clients": 0}}, "config: api.login_clients:"),
        (
            {"api": {"metrics_open": False}},
            "config: (top level): api.metrics_open: false serves metrics only",
        ),
        (
            {
                "api": {"port": 8080, "session_secret": SECRET, "metrics_open": False},
                "metrics": {"port": 9108},
            },
            "config: (top level): metrics.port: the metrics port has no authentication",
        ),
    ],
)
def test_session_throttle_and_metrics_settings_name_the_key(
    tmp_path: Path, raw: dict[str, Any], expected: str
) -> None:
    config = copy.deepcopy(BASE)
    config.update(raw)
    found = problems(tmp_path, config)
    assert any(line.startswith(expected) for line in found), found


def test_the_metrics_port_is_loopback_by_default_and_shut_when_metrics_are_closed(
    tmp_path: Path,
) -> None:
    config = copy.deepcopy(BASE)
    config.pop("metrics", None)
    assert load_cfg(tmp_path, config).metrics.host == "127.0.0.1"
    config["api"] = {"port": 8080, "session_secret": SECRET, "metrics_open": False}
    cfg = load_cfg(tmp_path, config)
    assert cfg.metrics.port == 0  # the runner opens no metrics port; the API serves /metrics
    env = {"DRIFTWATCH_API__SESSION_SECRET": SECRET}
    config["api"] = {"port": 8080}
    assert load_cfg(tmp_path, config, env).api.session_secret == SECRET


def test_a_session_secret_file_is_read_at_start_up_and_a_short_one_names_the_key(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    cfg = load_cfg(tmp_path, with_api({"port": 8080, "session_secret_file": str(secret)}))
    assert session_secret(cfg.api) == SECRET
    secret.write_text("too short", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        session_secret(cfg.api)
    assert str(info.value).startswith("config: api.session_secret_file: ")
    secret.unlink()
    with pytest.raises(ConfigError) as info:
        session_secret(cfg.api)
    assert str(info.value).startswith(f"config: api.session_secret_file: cannot read {secret}")


def _outward_address() -> str:
    # The address this machine reaches others from (no packet is sent for a UDP connect).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 9))
        address: str = s.getsockname()[0]
        return address


def test_the_default_metrics_port_answers_on_loopback_only(tmp_path: Path) -> None:
    outward = _outward_address()
    if outward.startswith("127."):
        pytest.skip("this machine has no address but loopback to test from")
    config = copy.deepcopy(BASE)
    config.pop("metrics", None)
    cfg = load_cfg(tmp_path, config)
    metrics = Metrics()
    server, thread = start_http_server(0, addr=cfg.metrics.host, registry=metrics.registry)
    try:
        port = server.server_address[1]
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{outward}:{port}/metrics", timeout=5)
    finally:
        server.shutdown()
        thread.join(5)
