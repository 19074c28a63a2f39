"""Conditions a replica raises about itself: its consumer stalled, its dead-letter rate.

They concern no model, so they are queued under the model name ``_service``: a
route without ``models`` gets them, and ``models: [_service]`` selects them.
Each carries a ``scope``, the consumer group and the partitions this replica
held when it fired (``driftwatch/predictions:0-3``), which joins the channels'
dedup key (:func:`service.alerts.base.dedup_key`), so every replica's condition
fires and resolves on its own.

Which scope fires is the replica's own state. A replica that dies while its
condition fires cannot resolve it; whichever replica next holds one of the named
partitions, healthy, resolves that orphan (its own restart, usually).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertEventRow, AlertOutbox, event_action, event_payload
from db.session import transaction
from service.config.alerts import SERVICE_MODEL

CONSUMER_STALLED = "consumer_stalled"
DEAD_LETTER_RATE = "dead_letter_rate"

__all__ = ["CONSUMER_STALLED", "DEAD_LETTER_RATE", "SERVICE_MODEL", "Finding", "ReplicaCondition"]

PartitionKey = tuple[str, int]


def describe(partitions: Iterable[PartitionKey]) -> str:
    """``predictions:0-3,7;labels:0`` — each topic's partitions as ranges, topics sorted."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    if not by_topic:
        return "no partitions"
    parts = []
    for topic in sorted(by_topic):
        numbers = sorted(set(by_topic[topic]))
        ranges: list[str] = []
        start = prev = numbers[0]
        for n in [*numbers[1:], None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
            if n is not None:
                start = prev = n
        parts.append(f"{topic}:{','.join(ranges)}")
    return ";".join(parts)


def listing(partitions: Iterable[PartitionKey]) -> dict[str, list[int]]:
    """The partitions as JSON: topic -> sorted partition numbers."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(set(partitions)):
        by_topic.setdefault(topic, []).append(partition)
    return by_topic


@dataclass(frozen=True)
class Finding:
    """A condition found firing: the partitions it concerns and what was measured."""

    partitions: frozenset[PartitionKey]
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Open:
    scope: str
    trigger_key: str
    partitions: frozenset[PartitionKey]


class ReplicaCondition:
    """One kind's fire/resolve state for this replica, written to the outbox.

    ``clock`` stamps the events (aware UTC). :meth:`update` queues at most a resolve
    of what fired before and a trigger of what fires now, in one transaction; the
    state changes only once that transaction has committed, so a failed write is
    simply tried again on the next call.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        kind: str,
        group: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._kind = kind
        self._group = group
        self._clock = clock
        self._open: _Open | None = None

    @property
    def firing(self) -> str | None:
        """The scope firing from this replica, or None."""
        return None if self._open is None else self._open.scope

    def scope(self, partitions: Iterable[PartitionKey]) -> str:
        return f"{self._group}/{describe(partitions)}"

    def update(
        self,
        finding: Finding | None,
        healthy: frozenset[PartitionKey],
        cleared: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Bring the outbox in line with ``finding`` (None: nothing fires here); resolve
        other replicas' orphans naming one of the ``healthy`` partitions held here.
        ``cleared`` is what a resolve reports as measured. Returns the keys of the
        events queued.

        A condition keeps the scope it fired with until it resolves, whatever the
        partitions do meanwhile: a rebalance or a second partition stalling is the
        same page, not a resolve and a new trigger."""
        now = self._clock()
        current = self._open
        queued: list[str] = []
        with transaction(self._sessions) as session:
            outbox = AlertOutbox(session)
            if current is not None and finding is None:
                key = _resolve_key(current.trigger_key)
                payload = self._payload(current.scope, current.partitions, "resolve", cleared or {})
                message = f"cleared: {self._kind} of {current.scope}"
                if outbox.add(key, self._kind, SERVICE_MODEL, message, now, payload=payload):
                    queued.append(key)
                current = None
            elif current is None and finding is not None:
                scope = self.scope(finding.partitions)
                key = f"{self._kind}-{_digest(scope)}-{int(now.timestamp())}-trigger"
                payload = self._payload(scope, finding.partitions, "trigger", finding.details)
                if outbox.add(
                    key, self._kind, SERVICE_MODEL, finding.message, now, payload=payload
                ):
                    queued.append(key)
                current = _Open(scope, key, finding.partitions)
            queued.extend(
                self._resolve_orphans(session, outbox, healthy, current, now, cleared or {})
            )
        self._open = current
        return queued

    def _payload(
        self,
        scope: str,
        partitions: frozenset[PartitionKey],
        action: str,
        details: Mapping[str, Any],
    ) -> dict[str, Any]:
        return {
            **details,
            "action": action,
            "scope": scope,
            "group": self._group,
            "partitions": listing(partitions),
        }

    def _resolve_orphans(
        self,
        session: Session,
        outbox: AlertOutbox,
        healthy: frozenset[PartitionKey],
        mine: _Open | None,
        now: datetime,
        cleared: Mapping[str, Any],
    ) -> list[str]:
        queued = []
        for event in _open_triggers(session, self._kind, self._group):
            payload = event_payload(event)
            if mine is not None and payload.get("scope") == mine.scope:
                continue
            named = _partitions(payload.get("partitions"))
            if not named & healthy:
                continue  # still another replica's to resolve, or nobody's here yet
            key = _resolve_key(event.key)
            same: dict[str, Any] = {
                k: payload[k] for k in ("scope", "group", "partitions") if k in payload
            }
            resolve = {**same, **cleared, "action": "resolve", "resolved_by_successor": True}
            message = f"cleared: {self._kind} of {payload.get('scope')} (partitions healthy again)"
            if outbox.add(key, self._kind, SERVICE_MODEL, message, now, payload=resolve):
                queued.append(key)
        return queued


def _open_triggers(session: Session, kind: str, group: str) -> list[AlertEventRow]:
    """The newest event of each scope of ``kind`` in ``group`` whose action is a trigger."""
    a = AlertEventRow
    stmt = select(a).where(a.model == SERVICE_MODEL, a.kind == kind).order_by(a.id)
    newest: dict[str, AlertEventRow] = {}
    for event in session.scalars(stmt):
        payload = event_payload(event)
        scope = payload.get("scope")
        if isinstance(scope, str) and payload.get("group") == group:
            newest[scope] = event
    return [e for e in newest.values() if event_action(e) == "trigger"]


def _partitions(value: Any) -> frozenset[PartitionKey]:
    if not isinstance(value, dict):
        return frozenset()
    return frozenset(
        (topic, p)
        for topic, numbers in value.items()
        if isinstance(numbers, list)
        for p in numbers
        if isinstance(p, int)
    )


def _resolve_key(trigger_key: str) -> str:
    return trigger_key.removesuffix("-trigger") + "-resolve"


def _digest(scope: str) -> str:
    # The outbox key column is 200 characters; a scope naming many partitions may not fit.
    return hashlib.sha256(scope.encode()).hexdigest()[:16]
