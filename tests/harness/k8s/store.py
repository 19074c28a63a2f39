"""The emulator's state: objects keyed by (resource, namespace, name), one global
resourceVersion counter, and the event history that watches replay.

History older than :meth:`Store.compact`'s mark is gone, so a watch from there
gets 410 Gone, as from an API server whose etcd compacted it.
"""

from __future__ import annotations

import builtins
import copy
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
# The alphabet of the API server's generated name suffixes (k8s.io/apimachinery's
# util/rand): lowercase consonants and digits, no vowels or look-alikes.
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SUFFIX_LENGTH = 5


def random_suffix() -> str:
    return "".join(random.choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str
    namespace: str
    obj: Obj


class Conflict(Exception):
    """The name is taken (409)."""


class NotFound(Exception):
    """No such object (404)."""


class Stale(Exception):
    """An update sent a resourceVersion that is not the stored one (409 Conflict)."""

    def __init__(self, stored: str, sent: str) -> None:
        super().__init__(f"stored {stored}, sent {sent}")
        self.stored, self.sent = stored, sent


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def matches(obj: Obj, selector: str | None) -> bool:
    """Equality-based label selectors (``a=b,c=d``), what the executor uses."""
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


class Store:
    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._events: list[Event] = []
        self._rv = 0
        self._compacted = 0
        self.changed = threading.Condition()
        self.generation = 0  # bumped by compact(): open watches end
        # What ``generateName`` appends; a test may replace it to make names sort any way.
        self.suffixes: Callable[[], str] = random_suffix

    @property
    def rv(self) -> int:
        return self._rv

    @property
    def compacted(self) -> int:
        return self._compacted

    def _record(self, type_: str, resource: str, namespace: str, obj: Obj) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._events.append(Event(self._rv, type_, resource, namespace, copy.deepcopy(obj)))
        self.changed.notify_all()

    def create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        with self.changed:
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generated(resource, namespace, meta["generateName"])
            key = (resource, namespace, meta["name"])
            if key in self._objects:
                raise Conflict(meta["name"])
            meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now_iso())
            meta.setdefault("labels", {})
            self._objects[key] = obj
            self._record("ADDED", resource, namespace, obj)
            return copy.deepcopy(obj)

    def _generated(self, resource: str, namespace: str, prefix: str) -> str:
        """``generateName``: the prefix and a random suffix, as the API server makes them
        (it answers a taken name with 409; a few draws make that practically never)."""
        for _ in range(8):
            name = f"{prefix}{self.suffixes()}"
            if (resource, namespace, name) not in self._objects:
                return name
        raise Conflict(prefix)

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        with self.changed:
            try:
                return copy.deepcopy(self._objects[(resource, namespace, name)])
            except KeyError:
                raise NotFound(name) from None

    def list(self, resource: str, namespace: str, selector: str | None) -> tuple[list[Obj], int]:
        with self.changed:
            items = [
                copy.deepcopy(o)
                for (r, ns, _), o in sorted(self._objects.items())
                if r == resource and ns == namespace and matches(o, selector)
            ]
            return items, self._rv

    def update(
        self, resource: str, namespace: str, name: str, change: Callable[[Obj], None]
    ) -> Obj:
        with self.changed:
            try:
                obj = self._objects[(resource, namespace, name)]
            except KeyError:
                raise NotFound(name) from None
            change(obj)
            self._record("MODIFIED", resource, namespace, obj)
            return copy.deepcopy(obj)

    def replace(self, resource: str, namespace: str, name: str, obj: Obj) -> Obj:
        """PUT: the whole object, if the ``resourceVersion`` it carries (when it carries
        one) is the stored one; identity fields stay the server's."""
        with self.changed:
            try:
                stored = self._objects[(resource, namespace, name)]
            except KeyError:
                raise NotFound(name) from None
            meta = obj.setdefault("metadata", {})
            sent = meta.get("resourceVersion")
            if sent is not None and str(sent) != stored["metadata"]["resourceVersion"]:
                raise Stale(stored["metadata"]["resourceVersion"], str(sent))
            for key in ("uid", "creationTimestamp", "namespace"):
                meta[key] = stored["metadata"][key]
            meta["name"] = name
            meta.setdefault("labels", {})
            self._objects[(resource, namespace, name)] = obj
            self._record("MODIFIED", resource, namespace, obj)
            return copy.deepcopy(obj)

    def delete(self, resource: str, namespace: str, name: str) -> Obj:
        with self.changed:
            try:
                obj = self._objects.pop((resource, namespace, name))
            except KeyError:
                raise NotFound(name) from None
            self._record("DELETED", resource, namespace, obj)
            return copy.deepcopy(obj)

    def namespaces(self, resource: str) -> builtins.list[str]:
        with self.changed:
            return sorted({ns for r, ns, _ in self._objects if r == resource})

    def events_after(self, rv: int, resource: str, namespace: str) -> builtins.list[Event]:
        """Events newer than ``rv``; the caller holds ``changed``."""
        return [
            e
            for e in self._events
            if e.rv > rv and e.resource == resource and e.namespace == namespace
        ]

    def close_watches(self) -> None:
        """End open watches, keeping the history (an API server restart or a load balancer
        that drops long connections): watchers resume from their last version."""
        with self.changed:
            self.generation += 1
            self.changed.notify_all()

    def compact(self) -> None:
        """Forget the history up to now and end open watches: as in a cluster, where other
        writes advance the global resourceVersion meanwhile, every watcher's last version
        is now too old, and it must re-list."""
        with self.changed:
            self._rv += 1
            self._compacted = self._rv
            self._events.clear()
            self.generation += 1
            self.changed.notify_all()
