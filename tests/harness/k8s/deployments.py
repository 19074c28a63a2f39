"""``apps/v1`` Deployments for the emulator: validation, strategic merge patches,
``metadata.generation``, and a Deployment controller whose availability the test
decides.

What the API server and the controller do, reduced to what a router sees:

- ``metadata.generation`` is 1 on create and grows by one with every write that
  changes ``spec`` (status writes never change it).
- A patch sent as ``application/strategic-merge-patch+json`` (what the official
  client sends for an object body) merges lists of named objects (``containers``,
  ``env``, ``volumes``…) by ``name``, as their ``patchMergeKey`` says; other lists
  are replaced, and ``null`` deletes a field, as in a JSON merge patch.
- The controller settles a Deployment when it is read (get or list) or on
  :meth:`Deployments.tick`: ``status.observedGeneration`` catches up with the
  generation, and ``replicas``, ``updatedReplicas``, ``readyReplicas`` and
  ``availableReplicas`` become ``spec.replicas``. A Deployment the test
  :meth:`~Deployments.hold` s has its new Pods never ready: the controller observes
  the generation, ``updatedReplicas`` is ``spec.replicas`` and nothing is available
  (``Available`` False) until :meth:`~Deployments.release`. Zero counts are left out
  of the status, as the API server leaves them out.
"""

from __future__ import annotations

import re
import threading
from typing import Any, TypeGuard

from tests.harness.k8s.store import NotFound, Obj, Store, now_iso

_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
STRATEGIC = "application/strategic-merge-patch+json"


class Invalid(Exception):
    """What the API server answers 422 to: ``field`` and what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def validate(deployment: Obj) -> None:
    """The checks an API server makes that a manifest can get wrong."""
    name = (deployment.get("metadata") or {}).get("name", "")
    if not _DNS.match(name) or len(name) > 253:
        raise Invalid("metadata.name", f"Invalid value: {name!r}")
    spec = deployment.get("spec") or {}
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise Invalid("spec.replicas", f"Invalid value: {replicas!r}")
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        raise Invalid(
            "spec.template.metadata.labels", "`selector` does not match template `labels`"
        )
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        raise Invalid("spec.template.spec.containers", "Required value")
    for i, container in enumerate(containers):
        for key in ("name", "image"):
            if not container.get(key):
                raise Invalid(f"spec.template.spec.containers[{i}].{key}", "Required value")


def created(deployment: Obj) -> None:
    """What the API server adds to a new Deployment."""
    deployment["metadata"]["generation"] = 1
    deployment.setdefault("spec", {}).setdefault("replicas", 1)
    deployment["status"] = {}


def strategic_merge(target: Obj, patch: Obj) -> None:
    """A strategic merge patch, with ``name`` as the merge key of every list of objects."""
    for key, value in patch.items():
        current = target.get(key)
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            strategic_merge(current, value)
        elif _named_list(value) and _named_list(current):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    strategic_merge(by_name[item["name"]], item)
                else:
                    current.append(item)
        else:
            target[key] = value


def _named_list(value: Any) -> TypeGuard[list[Obj]]:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


def bump_generation(deployment: Obj, spec_before: Any) -> None:
    if deployment.get("spec") != spec_before:
        meta = deployment["metadata"]
        meta["generation"] = int(meta.get("generation", 1)) + 1


class Deployments:
    """The Deployment controller; ``held`` Deployments never become available."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.held: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def hold(self, namespace: str, name: str) -> None:
        with self._lock:
            self.held.add((namespace, name))

    def release(self, namespace: str, name: str) -> None:
        with self._lock:
            self.held.discard((namespace, name))

    def tick(self) -> None:
        """One pass of the controller over every Deployment."""
        for namespace in self.store.namespaces("deployments"):
            self.settle(namespace, None)

    def settle(self, namespace: str, name: str | None) -> None:
        """Bring the status of ``name`` (None: every Deployment of ``namespace``) to
        what the controller would have written by now."""
        if name is None:
            found = self.store.list("deployments", namespace, None)[0]
            names = [o["metadata"]["name"] for o in found]
        else:
            names = [name]
        for each in names:
            self._settle_one(namespace, each)

    def _settle_one(self, namespace: str, name: str) -> None:
        try:
            current = self.store.get("deployments", namespace, name)
        except NotFound:
            return
        status = self._status(namespace, current)
        if _counts(current.get("status") or {}) != _counts(status):
            self.store.update("deployments", namespace, name, lambda o: o.update(status=status))

    def _status(self, namespace: str, deployment: Obj) -> Obj:
        with self._lock:
            held = (namespace, deployment["metadata"]["name"]) in self.held
        wanted = int(deployment["spec"].get("replicas", 1))
        available = 0 if held else wanted
        counts = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": wanted,
            "updatedReplicas": wanted,
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": wanted - available,
        }
        stamp = now_iso()
        ready = available == wanted
        conditions = [
            {"type": "Available", "status": "True" if ready else "False",
             "reason": "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable",
             "lastUpdateTime": stamp, "lastTransitionTime": stamp},
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if ready else "ReplicaSetUpdated",
             "lastUpdateTime": stamp, "lastTransitionTime": stamp},
        ]  # fmt: skip
        status: Obj = {k: v for k, v in counts.items() if v}
        status["conditions"] = conditions
        return status


def _counts(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if k != "conditions"}
