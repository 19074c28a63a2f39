"""The do-nothing channel: logs the alert and reports it delivered (local runs, dry runs)."""

from __future__ import annotations

import logging
from datetime import datetime

from service.alerts.base import Alert, Outcome
from service.alerts.masking import printable

log = logging.getLogger(__name__)


class LogChannel:
    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, alert: Alert, now: datetime) -> Outcome:
        # printable: a model_version with a newline must not forge a second log line.
        log.warning(
            "alert %s (%s, %s): %s",
            printable(alert.dedup_key),
            alert.action,
            alert.severity,
            printable(alert.message),
        )
        return Outcome.delivered()

    async def close(self) -> None:
        pass
