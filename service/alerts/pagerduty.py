"""PagerDuty Events API v2: ``trigger`` and ``resolve`` events sharing a ``dedup_key``.

PagerDuty shows ``summary`` and ``custom_details`` as plain text (JSON carries them
as data), so nothing from the stream can act as markup; what it does enforce is
length: a ``dedup_key`` over 255 characters is refused with a 400, which would make
the delivery dead. Keys from long model versions are bounded with a digest
(:func:`service.alerts.base.bounded_key`). The routing key is a secret: it is
removed from any error text kept or logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from service.alerts.base import Action, Alert, Outcome, bounded_key
from service.alerts.http import body, post

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEDUP_KEY_CHARS = 255


def payload(alert: Alert, routing_key: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if alert.action is Action.RESOLVE else "trigger",
        "dedup_key": bounded_key(alert.dedup_key, DEDUP_KEY_CHARS),
    }
    if alert.action is not Action.RESOLVE:
        # PagerDuty's own severities are exactly critical/error/warning/info.
        event["payload"] = {
            "summary": alert.summary[:1024],
            "source": f"driftwatch/{alert.model}"[:255],
            "severity": str(alert.severity),
            "timestamp": alert.created_at.isoformat(),
            "component": alert.model[:255],
            "class": alert.kind,
            "custom_details": dict(alert.details),
        }
    return event


class PagerDutyChannel:
    def __init__(self, name: str, routing_key: str, client: httpx.AsyncClient, url: str) -> None:
        self.name = name
        self._key = routing_key
        self._client = client
        self._url = url

    async def send(self, alert: Alert, now: datetime) -> Outcome:
        content = body(payload(alert, self._key))
        return await post(self._client, self._url, content, now, secrets=[self._key])

    async def close(self) -> None:
        await self._client.aclose()
