"""PagerDuty Events API v2: ``trigger`` and ``resolve`` events sharing a ``dedup_key``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from service.alerts.base import Action, Alert, Outcome
from service.alerts.http import body, post

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def payload(alert: Alert, routing_key: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if alert.action is Action.RESOLVE else "trigger",
        "dedup_key": alert.dedup_key,
    }
    if alert.action is not Action.RESOLVE:
        # PagerDuty's own severities are exactly critical/error/warning/info.
        event["payload"] = {
            "summary": alert.summary[:1024],
            "source": f"driftwatch/{alert.model}",
            "severity": str(alert.severity),
            "timestamp": alert.created_at.isoformat(),
            "component": alert.model,
            "class": alert.kind,
            "custom_details": dict(alert.details),
        }
    return event


class PagerDutyChannel:
    def __init__(self, name: str, routing_key: str, client: httpx.Client, url: str) -> None:
        self.name = name
        self._key = routing_key
        self._client = client
        self._url = url

    def send(self, alert: Alert, now: datetime) -> Outcome:
        return post(self._client, self._url, body(payload(alert, self._key)), now)

    def close(self) -> None:
        self._client.close()
