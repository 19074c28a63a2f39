"""Custom objects in the emulator: ``/apis/<group>/<version>/namespaces/<ns>/<plural>``
for any group and version whose (group, plural) is installed in :data:`KINDS`, as a
CustomResourceDefinition installs it in a cluster (an uninstalled one is 404).

Served as the API server serves a CRD with the status subresource: every served version
reads and writes the same stored object (the ``apiVersion`` answered is the one asked);
writes to the main resource keep the stored ``status`` and writes to ``/status`` change
only it; ``metadata.generation`` grows when ``spec`` changes; a merge patch or a PUT that
carries ``metadata.resourceVersion`` is refused with 409 when it is not the stored one.
Objects live in the store under :func:`key` (``<plural>.<group>``), which is what a test
passes to ``emulator.store`` to seed an object or to write its status as a controller
would.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from tests.harness.k8s.store import Obj, Stale, Store

# (group, plural) -> kind: the CRDs installed in the emulated cluster.
KINDS: dict[tuple[str, str], str] = {
    ("gateway.networking.k8s.io", "httproutes"): "HTTPRoute",
    ("networking.istio.io", "virtualservices"): "VirtualService",
    ("serving.kserve.io", "inferenceservices"): "InferenceService",
}
_PATH = re.compile(
    r"^/apis/(?P<group>[a-z0-9.-]+)/(?P<version>v[0-9]+(?:(?:alpha|beta)[0-9]+)?)"
    r"/namespaces/(?P<ns>[a-z0-9-]+)/(?P<res>[a-z]+)"
    r"(?:/(?P<name>[a-z0-9.-]+)(?:/(?P<sub>status))?)?$"
)
Api = tuple[str, str, str]  # (group, version, kind)
Route = tuple[Api, str, str, str | None, str | None]  # (api, plural, ns, name, subresource)


def key(group: str, plural: str) -> str:
    """The store's resource key of a custom resource."""
    return f"{plural}.{group}"


def route(path: str) -> Route | None:
    m = _PATH.match(path)
    if m is None or (m["group"], m["res"]) not in KINDS:
        return None
    api = (m["group"], m["version"], KINDS[(m["group"], m["res"])])
    return api, m["res"], m["ns"], m["name"], m["sub"]


def merge_patch(target: Obj, patch: Obj) -> None:
    """JSON merge patch (RFC 7386): null deletes a key, a list replaces the whole list."""
    for name, value in patch.items():
        if value is None:
            target.pop(name, None)
        elif isinstance(value, dict) and isinstance(target.get(name), dict):
            merge_patch(target[name], value)
        else:
            target[name] = copy.deepcopy(value)


def dispatch(
    store: Store, api: Api, verb: str, plural: str, ns: str, name: str | None,
    sub: str | None, body: Obj,
) -> tuple[int, Any]:  # fmt: skip
    """One call on a custom resource; store errors propagate for the server to answer."""
    group, version, kind = api
    resource, api_version = key(group, plural), f"{group}/{version}"
    if verb == "create":
        body.update(apiVersion=api_version, kind=kind)
        body.setdefault("metadata", {})["generation"] = 1
        return 201, store.create(resource, ns, body)
    if verb == "list":
        items, rv = store.list(resource, ns, None)
        return 200, {"apiVersion": api_version, "kind": f"{kind}List",
                     "metadata": {"resourceVersion": str(rv)},
                     "items": [_as(o, api_version) for o in items]}  # fmt: skip
    if name is None:
        return _unsupported(verb, plural)
    if verb == "get":
        return 200, _as(store.get(resource, ns, name), api_version)
    if verb == "delete":
        return 200, store.delete(resource, ns, name)
    if verb not in ("patch", "update"):
        return _unsupported(verb, plural)

    def change(obj: Obj) -> None:
        _check_version(obj, body)
        new = copy.deepcopy(obj)
        if verb == "patch":
            merge_patch(new, body)
        else:
            new = copy.deepcopy(body)
            new.update(apiVersion=api_version, kind=kind)
        _keep_identity(obj, new, status_only=sub == "status")
        obj.clear()
        obj.update(new)

    return 200, _as(store.update(resource, ns, name, change), api_version)


def _unsupported(verb: str, plural: str) -> tuple[int, Obj]:
    message = f"{verb} is not supported on {plural}"
    return 405, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                 "message": message, "reason": "MethodNotAllowed", "code": 405}  # fmt: skip


def _check_version(stored: Obj, body: Obj) -> None:
    sent = (body.get("metadata") or {}).get("resourceVersion")
    if sent is not None and str(sent) != stored["metadata"]["resourceVersion"]:
        raise Stale(stored["metadata"]["resourceVersion"], str(sent))


def _keep_identity(old: Obj, new: Obj, *, status_only: bool) -> None:
    """The server's fields stay the server's; the status subresource splits the writes."""
    meta = new.setdefault("metadata", {})
    for field in ("name", "namespace", "uid", "creationTimestamp", "generation"):
        meta[field] = old["metadata"].get(field)
    if status_only:
        status = new.get("status")
        new.clear()
        new.update(copy.deepcopy(old))
        if status is not None:
            new["status"] = status
        else:
            new.pop("status", None)
        return
    new.pop("status", None)
    if "status" in old:
        new["status"] = copy.deepcopy(old["status"])
    if new.get("spec") != old.get("spec"):
        meta["generation"] = int(old["metadata"].get("generation") or 1) + 1


def _as(obj: Obj, api_version: str) -> Obj:
    obj["apiVersion"] = api_version
    return obj
