"""A generic JSON webhook, signed: ``X-Driftwatch-Signature: sha256=<hex>`` is the
HMAC-SHA256 of ``<timestamp>.<body>`` under the shared secret, and
``X-Driftwatch-Timestamp`` carries that timestamp so a receiver can refuse replays.

The body is JSON; values from the stream travel as JSON strings, exactly, and a
receiver that renders them must escape them for its own markup. The URL and the
signing secret are never logged (see :mod:`service.alerts.masking`).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

import httpx

from service.alerts.base import Alert, Outcome
from service.alerts.http import body, post


def payload(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.event_id,
        "model": alert.model,
        "kind": alert.kind,
        "action": str(alert.action),
        "severity": str(alert.severity),
        "dedup_key": alert.dedup_key,
        "message": alert.message,
        "created_at": alert.created_at.isoformat(),
        "details": dict(alert.details),
    }


def signature(secret: bytes, timestamp: str, content: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode() + b"." + content, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookChannel:
    def __init__(self, name: str, url: str, secret: bytes, client: httpx.AsyncClient) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._client = client

    async def send(self, alert: Alert, now: datetime) -> Outcome:
        content = body(payload(alert))
        stamp = str(int(now.timestamp()))
        headers = {
            "X-Driftwatch-Timestamp": stamp,
            "X-Driftwatch-Signature": signature(self._secret, stamp, content),
        }
        secrets = [self._secret.decode(errors="replace")]
        return await post(self._client, self._url, content, now, headers, secrets)

    async def close(self) -> None:
        await self._client.aclose()
