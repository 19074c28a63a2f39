"""Opsgenie Alert API: create with an ``alias``, close by that alias.

Opsgenie takes the fields as plain text and enforces lengths (alias 512, message
130, entity 512, a tag 50 characters, description 15000); a longer value is a 422,
which would make the delivery dead, so values that may come from the stream are
bounded here, the alias with a digest so two versions' aliases stay distinct. The
API key is removed from any error text kept or logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from service.alerts.base import Action, Alert, Outcome, Severity, bounded_key
from service.alerts.http import body, post

API_URL = "https://api.opsgenie.com"
_PRIORITY = {
    Severity.CRITICAL: "P1",
    Severity.ERROR: "P2",
    Severity.WARNING: "P3",
    Severity.INFO: "P5",
}


ALIAS_CHARS = 512


def alias(alert: Alert) -> str:
    return bounded_key(alert.dedup_key, ALIAS_CHARS)


def create_payload(alert: Alert) -> dict[str, Any]:
    return {
        # Opsgenie truncates message at 130 characters; the full text goes in description.
        "message": alert.summary[:130],
        "alias": alias(alert),
        "description": alert.message[:15000],
        "priority": _PRIORITY[alert.severity],
        "source": "driftwatch",
        "entity": alert.model[:512],
        "tags": ["driftwatch", alert.kind[:50]],
        "details": {k[:8000]: str(v)[:8000] for k, v in alert.details.items()},
    }


def close_payload(alert: Alert) -> dict[str, Any]:
    return {"source": "driftwatch", "note": alert.message}


class OpsgenieChannel:
    def __init__(self, name: str, api_key: str, client: httpx.AsyncClient, url: str) -> None:
        self.name = name
        self._key = api_key
        self._headers = {"Authorization": f"GenieKey {api_key}"}
        self._client = client
        self._url = url.rstrip("/")

    async def send(self, alert: Alert, now: datetime) -> Outcome:
        if alert.action is not Action.RESOLVE:
            url, data = f"{self._url}/v2/alerts", create_payload(alert)
        else:
            named = quote(alias(alert), safe="")
            url = f"{self._url}/v2/alerts/{named}/close?identifierType=alias"
            data = close_payload(alert)
        return await post(self._client, url, body(data), now, self._headers, [self._key])

    async def close(self) -> None:
        await self._client.aclose()
