"""Reading and patching the one custom object a router owns (an HTTPRoute, a
VirtualService, an InferenceService) through the official client's CustomObjectsApi.

Writes are JSON merge patches (the content type the client sends for a dict body to
``patch_namespaced_custom_object``): a mapping merges key by key, ``None`` deletes a
key, and a list is replaced whole, so a router that changes one rule's weights sends
the whole list it read. Every patch carries the ``metadata.resourceVersion`` of that
read: the API server applies it only to that version and answers 409 Conflict
otherwise, so a concurrent edit (an operator's, a GitOps controller's) is never
overwritten with a list built from a stale copy. The 409 is not retried here: it is a
retriable :class:`RouterError` and the next tick reads again (routers never block).

Errors, classed for the rollout: 5xx, 408, 429, 409 and transport failures (timeouts,
refused connections) are retriable; 400, 401, 403, 404, 422 are not, with the API
server's own message and the object's namespace/name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from retrain import kubeclient
from retrain.errors import RouterError

# A 409 is a concurrent edit since our read (optimistic concurrency): the next tick
# reads again, so it is retriable here, unlike for the executor's creates.
_RETRIABLE_STATUS = kubeclient.RETRIABLE_STATUS | {409}
Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Where the object lives: its API (group, version, plural), kind, namespace, name."""

    group: str
    version: str
    plural: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def connect(cluster: kubeclient.ClusterConfig, key: str) -> client.ApiClient:
    """An API client for the configured cluster, loaded as the executor loads it; a
    configuration that cannot be loaded is a fatal :class:`RouterError` naming ``key``."""
    return kubeclient.api_client(
        cluster, key, lambda message: RouterError(message, retriable=False)
    )


class CustomObject:
    """One named custom object: read it whole, merge-patch it against the version read."""

    def __init__(
        self, api_client: client.ApiClient, ref: ObjectRef, *, request_timeout: float
    ) -> None:
        self.ref = ref
        self._api = client.CustomObjectsApi(api_client)
        self._timeout = request_timeout

    def get(self) -> Obj:
        ref = self.ref
        try:
            obj = self._api.get_namespaced_custom_object(
                ref.group, ref.version, ref.namespace, ref.plural, ref.name,
                _request_timeout=self._timeout,
            )  # fmt: skip
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate(exc, ref, "get") from exc
        return _mapping(obj, ref)

    def patch(self, read: Mapping[str, Any], body: Obj) -> Obj:
        """Merge-patch ``body`` into the object, provided it is still the version ``read``;
        the object as the server stored it."""
        ref = self.ref
        version = read.get("metadata", {}).get("resourceVersion")
        body = {**body, "metadata": {**body.get("metadata", {}), "resourceVersion": version}}
        try:
            obj = self._api.patch_namespaced_custom_object(
                ref.group, ref.version, ref.namespace, ref.plural, ref.name, body,
                _request_timeout=self._timeout,
            )  # fmt: skip
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate(exc, ref, "patch") from exc
        return _mapping(obj, ref)


def translate(exc: Exception, ref: ObjectRef, verb: str) -> RouterError:
    """An API or transport error as a :class:`RouterError`, classed retriable or fatal."""
    where = f"{verb} {ref.plural}.{ref.group}/{ref.version} {ref.namespace}/{ref.name}"
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        retriable = status in _RETRIABLE_STATUS or status >= 500
        return RouterError(f"{where}: {status} {kubeclient.api_reason(exc)}", retriable=retriable)
    return RouterError(f"{where}: {exc}", retriable=True)


def _mapping(obj: object, ref: ObjectRef) -> Obj:
    if not isinstance(obj, dict):
        raise RouterError(f"{ref}: the API answered {type(obj).__name__}", retriable=True)
    return obj


def invalid(ref: ObjectRef, what: str) -> RouterError:
    """The object cannot carry the split as configured: fatal until someone edits it."""
    return RouterError(f"{ref}: {what}", retriable=False)
