"""Slack incoming webhook: ``{"text": ..., "blocks": [...]}`` POSTed to the hook URL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from service.alerts.base import Action, Alert, Outcome
from service.alerts.http import body, post


def payload(alert: Alert) -> dict[str, Any]:
    icon = ":white_check_mark:" if alert.action is Action.RESOLVE else ":rotating_light:"
    text = f"{icon} {alert.summary}"
    fields = [
        {"type": "mrkdwn", "text": f"*Model*\n{alert.model}"},
        {"type": "mrkdwn", "text": f"*Kind*\n{alert.kind}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{alert.severity}"},
        {"type": "mrkdwn", "text": f"*State*\n{alert.action}"},
    ]
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "fields": fields},
        ],
    }


class SlackChannel:
    def __init__(self, name: str, url: str, client: httpx.Client) -> None:
        self.name = name
        self._url = url
        self._client = client

    def send(self, alert: Alert, now: datetime) -> Outcome:
        return post(self._client, self._url, body(payload(alert)), now)

    def close(self) -> None:
        self._client.close()
