"""Slack incoming webhook: ``{"text": ..., "blocks": [...]}`` POSTed to the hook URL.

Slack reads ``text`` and ``mrkdwn`` fields as markup: ``<!channel>`` pings everyone,
``<https://x|label>`` is a link with any label. Every value that may come from the
stream (model, model_version in the message, kind) is escaped as Slack documents:
``&``, ``<`` and ``>`` become ``&amp;``, ``&lt;`` and ``&gt;``, which Slack shows as
the characters and never parses as a control sequence.

The webhook URL is the credential: it is never logged (see :mod:`service.alerts.masking`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from service.alerts.base import Action, Alert, Outcome
from service.alerts.http import body, post


def escape(text: str) -> str:
    """Slack's own escaping for text in ``text`` and ``mrkdwn`` fields."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(alert: Alert) -> dict[str, Any]:
    icon = ":white_check_mark:" if alert.action is Action.RESOLVE else ":rotating_light:"
    text = f"{icon} {escape(alert.summary)}"
    fields = [
        {"type": "mrkdwn", "text": f"*Model*\n{escape(alert.model)}"},
        {"type": "mrkdwn", "text": f"*Kind*\n{escape(alert.kind)}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{escape(str(alert.severity))}"},
        {"type": "mrkdwn", "text": f"*State*\n{escape(str(alert.action))}"},
    ]
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "fields": fields},
        ],
    }


class SlackChannel:
    def __init__(self, name: str, url: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self._url = url
        self._client = client

    async def send(self, alert: Alert, now: datetime) -> Outcome:
        return await post(self._client, self._url, body(payload(alert)), now)

    async def close(self) -> None:
        await self._client.aclose()
