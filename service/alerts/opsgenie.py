"""Opsgenie Alert API: create with an ``alias``, close by that alias."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from service.alerts.base import Action, Alert, Outcome, Severity
from service.alerts.http import body, post

API_URL = "https://api.opsgenie.com"
_PRIORITY = {
    Severity.CRITICAL: "P1",
    Severity.ERROR: "P2",
    Severity.WARNING: "P3",
    Severity.INFO: "P5",
}


def create_payload(alert: Alert) -> dict[str, Any]:
    return {
        # Opsgenie truncates message at 130 characters; the full text goes in description.
        "message": alert.summary[:130],
        "alias": alert.dedup_key,
        "description": alert.message,
        "priority": _PRIORITY[alert.severity],
        "source": "driftwatch",
        "entity": alert.model,
        "tags": ["driftwatch", alert.kind],
        "details": {k: str(v) for k, v in alert.details.items()},
    }


def close_payload(alert: Alert) -> dict[str, Any]:
    return {"source": "driftwatch", "note": alert.message}


class OpsgenieChannel:
    def __init__(self, name: str, api_key: str, client: httpx.Client, url: str) -> None:
        self.name = name
        self._headers = {"Authorization": f"GenieKey {api_key}"}
        self._client = client
        self._url = url.rstrip("/")

    def send(self, alert: Alert, now: datetime) -> Outcome:
        if alert.action is not Action.RESOLVE:
            url, data = f"{self._url}/v2/alerts", create_payload(alert)
        else:
            alias = quote(alert.dedup_key, safe="")
            url = f"{self._url}/v2/alerts/{alias}/close?identifierType=alias"
            data = close_payload(alert)
        return post(self._client, url, body(data), now, self._headers)

    def close(self) -> None:
        self._client.close()
