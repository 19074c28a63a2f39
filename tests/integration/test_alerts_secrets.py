"""No channel secret in any log line at any level (issue 17, point 2).

A full alert round (trigger, failures whose bodies echo the secrets back, retries,
an Alertmanager re-send, the resolve, a channel that cannot be reached) through all
five channel kinds, each configured with secrets where that kind keeps them: the
Slack webhook path, PagerDuty's routing key and a query token, Opsgenie's API key,
``user:password@`` in Alertmanager's and the webhook's URLs, the webhook's signing
secret. Every record of every logger is captured with the root logger at DEBUG.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.outbox import DeliveryRepository, DeliveryStatus
from db.session import transaction
from service.alerts import build_worker
from service.config.alerts import AlertsConfig
from tests.harness.receivers import Answer, Receiver, receiver
from tests.integration.test_alerts import T0, Clock, drift, sessions

__all__ = ["sessions"]

SECRETS = {
    "slack_path": "T0SECRET/B0SECRET/xoxbHookToken42",
    "pd_key": "pd-routing-key-9f8e7d",
    "pd_query": "pdQueryToken31337",
    "og_key": "og-api-key-5a4b3c",
    "am_password": "amPassw0rd-77",
    "hook_password": "hookPassw0rd-88",
    "hook_query": "hookQuerySecret-99",
    "hook_key": "webhook-signing-secret-aa",
}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def five() -> Iterator[dict[str, Receiver]]:
    with ExitStack() as stack:
        yield {
            "slack": stack.enter_context(receiver("slack")),
            "pagerduty": stack.enter_context(receiver("pagerduty", secret=SECRETS["pd_key"])),
            "opsgenie": stack.enter_context(receiver("opsgenie", secret=SECRETS["og_key"])),
            "alertmanager": stack.enter_context(receiver("alertmanager")),
            "webhook": stack.enter_context(receiver("webhook", secret=SECRETS["hook_key"])),
        }


def with_userinfo(url: str, user: str, password: str) -> str:
    return url.replace("http://", f"http://{user}:{password}@")


def channels(rx: dict[str, Receiver]) -> dict[str, dict[str, Any]]:
    s = SECRETS
    hook = with_userinfo(rx["webhook"].url, "hooker", s["hook_password"])
    return {
        "slack": {"type": "slack", "url": f"{rx['slack'].url}/services/{s['slack_path']}"},
        "pagerduty": {
            "type": "pagerduty",
            "url": f"{rx['pagerduty'].url}/v2/enqueue?token={s['pd_query']}",
            "secret": s["pd_key"],
        },
        "opsgenie": {"type": "opsgenie", "url": rx["opsgenie"].url, "secret": s["og_key"]},
        "alertmanager": {
            "type": "alertmanager",
            "url": with_userinfo(rx["alertmanager"].url, "am", s["am_password"]),
        },
        "webhook": {
            "type": "webhook",
            "url": f"{hook}/hook?sig={s['hook_query']}",
            "secret": s["hook_key"],
        },
        "gone": {
            "type": "webhook",
            "url": f"http://hooker:{s['hook_password']}@127.0.0.1:{_closed_port()}/x",
            "secret": s["hook_key"],
        },
    }


def test_a_full_alert_round_logs_no_secret_at_any_level(
    sessions: sessionmaker[Session], five: dict[str, Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger, and so every logger that inherits it
    configured = channels(five)
    everything = [*SECRETS.values(), configured["slack"]["url"]]
    for rx in five.values():
        # A receiver that echoes what it was given: the error text is stored and logged.
        echo = " ".join(everything).encode()
        rx.answer_next(Answer(503, (("Retry-After", "1"),), echo))
    cfg = AlertsConfig.model_validate(
        {"channels": configured, "routes": [{"channels": list(configured)}], "backoff": "1s"}
    )
    clock = Clock()
    worker = build_worker(cfg, sessions, None, clock)
    drift(sessions, True, "report-1", T0)
    worker.tick()  # every channel fails once
    clock.advance(5)
    assert worker.tick() == 5  # the five live ones deliver; "gone" fails again
    clock.advance(60)
    worker.tick()  # Alertmanager's re-send
    drift(sessions, False, "report-2", clock.now)
    clock.advance(1)
    assert worker.tick() == 5
    worker.close()
    with transaction(sessions) as s:
        stored = [d.delivery for d in DeliveryRepository(s).listing()]
    assert sum(d.status == DeliveryStatus.DELIVERED for d in stored) == 10
    assert len(five["alertmanager"].accepted) == 3
    logged = [r for r in caplog.records]
    assert any("gone" in r.getMessage() for r in logged), "the failures were not logged"
    texts = [caplog.text, *(r.getMessage() for r in logged)]
    texts += [d.last_error or "" for d in stored]
    leaked = sorted({secret for secret in everything for text in texts if secret in text})
    assert leaked == []
