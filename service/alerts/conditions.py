"""The alerts a verdict causes, written in the verdict's own transaction.

A condition (dataset drift, performance degradation, concept drift) *fires* on
the first window that shows it and *resolves* on the first window that shows it
gone; windows in between add nothing. A condition belongs to a model **and a
version**: when ``details`` name a ``model_version`` (every verdict's do), it is
the condition's ``scope``, so it joins the channels' dedup key
(``fraud/data_drift/v12``) and two live versions (a canary beside the stable
one) are two conditions, each firing and resolving on its own windows; a clean
window of one version never resolves another's page. Whether it is firing is
read from the newest alert event of that model, kind and scope, in the same
transaction, so the alert and the report that caused it commit together or not
at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db.outbox import AlertOutbox, last_action

DATA_DRIFT = "data_drift"
PERFORMANCE_DEGRADATION = "performance_degradation"
CONCEPT_DRIFT = "concept_drift"


def condition(
    session: Session,
    model: str,
    kind: str,
    firing: bool | None,
    key: str,
    message: str,
    now: datetime,
    details: Mapping[str, Any],
) -> bool:
    """Queue a trigger or a resolve when ``firing`` changes the condition's state;
    ``None`` (no verdict) changes nothing. True when an alert was queued."""
    if firing is None:
        return False
    version = details.get("model_version")
    scope = version if isinstance(version, str) and version else None
    was_firing = last_action(session, model, kind, scope) == "trigger"
    if firing == was_firing:
        return False
    action = "trigger" if firing else "resolve"
    text = message if firing else f"cleared: {message}"
    payload = {**details, "action": action}
    if scope is not None:
        payload["scope"] = scope
    return AlertOutbox(session).add(
        f"{kind}-{key}-{action}", kind, model, text, now, payload=payload
    )
