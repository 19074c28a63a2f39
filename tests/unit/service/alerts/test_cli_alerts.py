"""``driftwatch alerts deliver`` and ``alerts list``: a dead delivery is visible."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.session import make_engine, make_session_factory, transaction
from service.alerts.conditions import DATA_DRIFT, condition
from service.cli import main
from tests.harness.receivers import receiver


def write_config(path: Path, sqlite_url: str, url: str) -> str:
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "database": {"url": sqlite_url},
        "models": {"fraud": {"window": "1m", "features": {"amount": {"type": "numerical"}}}},
        "alerts": {
            "channels": {"team": {"type": "slack", "url": url}},
            "routes": [{"channels": ["team"]}],
        },
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def test_a_refused_alert_is_listed_as_dead(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(sqlite_url)
    with transaction(make_session_factory(engine)) as s:
        condition(s, "fraud", DATA_DRIFT, True, "r1", "drift", datetime.now(UTC), {})
    engine.dispose()
    with receiver("slack") as rx:
        rx.fail_next(1, 404)
        cfg = write_config(tmp_path / "c.yaml", sqlite_url, rx.url)
        assert main(["alerts", "deliver", "--config", cfg]) == 0
    capsys.readouterr()
    assert main(["alerts", "list", "--config", cfg, "--status", "dead", "--json"]) == 0
    [dead] = json.loads(capsys.readouterr().out)["deliveries"]
    assert (dead["channel"], dead["status"], dead["attempts"]) == ("team", "dead", 1)
    assert dead["dedup_key"] == "fraud/data_drift"
    assert dead["last_error"].startswith("refused: HTTP 404")
    assert main(["alerts", "list", "--config", cfg]) == 0
    assert "dead" in capsys.readouterr().out
