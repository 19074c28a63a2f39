"""Alertmanager API v2: ``POST /api/v2/alerts`` with a list of postable alerts.

Alertmanager forgets an alert whose ``endsAt`` passes, so a firing alert is
re-sent (the worker's ``resend_interval``) with ``endsAt`` moved forward, and a
resolve sends ``endsAt`` = now.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from service.alerts.base import Action, Alert, Outcome
from service.alerts.http import body, post


def payload(alert: Alert, now: datetime, hold: timedelta) -> list[dict[str, Any]]:
    ends = now if alert.action is Action.RESOLVE else now + hold
    labels = {
        "alertname": f"driftwatch_{alert.kind}",
        "model": alert.model,
        "kind": alert.kind,
        "severity": str(alert.severity),
        "service": "driftwatch",
    }
    scope = alert.details.get("scope")
    if isinstance(scope, str) and scope:
        # Alertmanager identifies an alert by its label set: two replicas' stalls are two.
        labels["scope"] = scope
    return [
        {
            "labels": labels,
            "annotations": {"summary": alert.message, "dedup_key": alert.dedup_key},
            "startsAt": alert.created_at.isoformat(),
            "endsAt": ends.isoformat(),
        }
    ]


class AlertmanagerChannel:
    def __init__(self, name: str, url: str, client: httpx.Client, hold: timedelta) -> None:
        self.name = name
        self._url = url.rstrip("/") + "/api/v2/alerts"
        self._client = client
        self._hold = hold

    def send(self, alert: Alert, now: datetime) -> Outcome:
        return post(self._client, self._url, body(payload(alert, now, self._hold)), now)

    def close(self) -> None:
        self._client.close()
