"""The ``alerts`` section: wrong settings stop the start with a message naming the key."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from service.alerts import make_channel
from service.alerts.errors import ChannelConfigError
from service.alerts.pagerduty import EVENTS_URL
from service.config import load_config
from service.config.alerts import ChannelConfig
from service.errors import ConfigError

BASE: dict[str, Any] = {
    "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
    "models": {"fraud": {"window": "1m", "features": {"amount": {"type": "numerical"}}}},
}


def load(tmp_path: Path, alerts: dict[str, Any]) -> Any:
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "alerts": alerts}))
    return load_config(str(path))


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"channels": {"pd": {"type": "pagerduty"}}}, "alerts.channels.pd"),
        ({"channels": {"s": {"type": "slack"}}}, "needs url"),
        ({"channels": {"x": {"type": "teams", "url": "u"}}}, "alerts.channels.x.type"),
        ({"channels": {}, "routes": [{"channels": ["nope"]}]}, "routes[0].channels"),
        (
            {"channels": {"w": {"type": "webhook", "url": "u", "secret": "a", "secret_env": "B"}}},
            "give one of secret",
        ),
        ({"max_attempts": 0}, "alerts.max_attempts"),
        ({"stalled_after": "0s"}, "alerts.stalled_after"),
        ({"stalled_after": "soon"}, "alerts.stalled_after"),
        ({"dead_letter_window": "-5m"}, "alerts.dead_letter_window"),
        ({"dead_letter_ratio": 1.5}, "alerts.dead_letter_ratio"),
        ({"dead_letter_ratio": 0}, "alerts.dead_letter_ratio"),
        ({"dead_letter_min_events": 0}, "alerts.dead_letter_min_events"),
        ({"max_retry_after": "0s"}, "alerts.max_retry_after"),
        ({"max_retry_after": "later"}, "alerts.max_retry_after"),
        ({"dead_after": "-1h"}, "alerts.dead_after"),
        ({"dead_after": "400d"}, "alerts.dead_after"),
        (
            {"channels": {"s": {"type": "slack", "url": "u", "deadline": "0s"}}},
            "alerts.channels.s.deadline",
        ),
        (
            {"channels": {"s": {"type": "slack", "url": "u", "concurrency": 0}}},
            "alerts.channels.s.concurrency",
        ),
    ],
)
def test_a_wrong_alerts_setting_names_its_key(
    tmp_path: Path, alerts: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(tmp_path, alerts)


def test_the_replica_watches_have_defaults_and_take_durations(tmp_path: Path) -> None:
    a = load(tmp_path, {}).alerts
    assert (a.stalled_after, a.dead_letter_window) == (300.0, 300.0)
    assert (a.dead_letter_ratio, a.dead_letter_min_events) == (0.05, 100)
    a = load(tmp_path, {"stalled_after": "2m", "dead_letter_window": "1h"}).alerts
    assert (a.stalled_after, a.dead_letter_window) == (120.0, 3600.0)


def test_no_model_may_take_the_name_of_the_services_own_alerts(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "c.yaml"
    models = {"_service": BASE["models"]["fraud"]}
    path.write_text(yaml.safe_dump({**BASE, "models": models}))
    # The name syntax (no leading underscore) refuses it before the reserved-name rule would.
    with pytest.raises(ConfigError, match=r"models: '_service': a model name must"):
        load_config(str(path))


def test_secrets_come_from_env_or_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key").write_text("from-file\n")
    monkeypatch.setenv("PD_KEY", "from-env")
    env = ChannelConfig(type="pagerduty", secret_env="PD_KEY")
    assert env.resolve_secret("alerts.channels.pd") == "from-env"
    file = ChannelConfig(type="opsgenie", secret_file=str(tmp_path / "key"))
    assert file.resolve_secret("alerts.channels.og") == "from-file"
    missing = ChannelConfig(type="pagerduty", secret_env="NOT_SET_ANYWHERE")
    with pytest.raises(ChannelConfigError, match=r"alerts.channels.pd.secret_env: \$NOT_SET"):
        make_channel("pd", missing)
    channel = make_channel("pd", env)
    assert channel.name == "pd" and channel._url == EVENTS_URL  # type: ignore[attr-defined]
    asyncio.run(channel.close())


def test_an_unknown_channel_type_fails_loudly_in_the_factory() -> None:
    bogus = ChannelConfig.model_construct(type="teams", url="u", secret=None, secret_env=None,
                                          secret_file=None, timeout=1.0)  # fmt: skip
    with pytest.raises(ChannelConfigError, match="unknown channel type 'teams'"):
        make_channel("t", bogus)
