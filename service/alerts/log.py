"""The do-nothing channel: logs the alert and reports it delivered (local runs, dry runs)."""

from __future__ import annotations

import logging
from datetime import datetime

from service.alerts.base import Alert, Outcome

log = logging.getLogger(__name__)


class LogChannel:
    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, alert: Alert, now: datetime) -> Outcome:
        log.warning(
            "alert %s (%s, %s): %s", alert.dedup_key, alert.action, alert.severity, alert.message
        )
        return Outcome.delivered()

    def close(self) -> None:
        pass
