"""Alertmanager API v2: ``POST /api/v2/alerts`` with a list of postable alerts.

Alertmanager forgets an alert whose ``endsAt`` passes, so a firing alert is
re-sent (the worker's ``resend_interval``) with ``endsAt`` moved forward, and a
resolve sends ``endsAt`` = now.

Label and annotation values are data to Alertmanager (its templates may render them
into other systems, which escape for themselves); what could break them is a control
character, so values that may come from the stream are made printable. The URL may
carry ``user:password@``: it is never logged (see :mod:`service.alerts.masking`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from service.alerts.base import Action, Alert, Outcome
from service.alerts.http import body, post
from service.alerts.masking import printable


def payload(alert: Alert, now: datetime, hold: timedelta) -> list[dict[str, Any]]:
    ends = now if alert.action is Action.RESOLVE else now + hold
    labels = {
        "alertname": f"driftwatch_{alert.kind}",
        "model": printable(alert.model),
        "kind": printable(alert.kind),
        "severity": str(alert.severity),
        "service": "driftwatch",
    }
    scope = alert.details.get("scope")
    if isinstance(scope, str) and scope:
        # Alertmanager identifies an alert by its label set: two replicas' stalls are two.
        labels["scope"] = printable(scope)
    return [
        {
            "labels": labels,
            "annotations": {
                "summary": printable(alert.message),
                "dedup_key": printable(alert.dedup_key),
            },
            "startsAt": alert.created_at.isoformat(),
            "endsAt": ends.isoformat(),
        }
    ]


class AlertmanagerChannel:
    def __init__(self, name: str, url: str, client: httpx.AsyncClient, hold: timedelta) -> None:
        self.name = name
        self._url = url.rstrip("/") + "/api/v2/alerts"
        self._client = client
        self._hold = hold

    async def send(self, alert: Alert, now: datetime) -> Outcome:
        return await post(self._client, self._url, body(payload(alert, now, self._hold)), now)

    async def close(self) -> None:
        await self._client.aclose()
