"""A Kubernetes API emulator over real HTTP: the subset the service calls.

Namespaced Jobs (``batch/v1``), Pods and their logs, ConfigMaps (``v1``),
Leases (``coordination.k8s.io/v1``) and Deployments (``apps/v1``, with the
controller of :mod:`tests.harness.k8s.deployments`): create, get, list, patch
(JSON merge, or strategic merge when the client sends that), update
(PUT, refused with 409 Conflict when its ``resourceVersion`` is not the stored
one), delete, watch with ``resourceVersion``, bookmarks and 410 Gone for
compacted history; 404, 409, 422 and 403 (per-verb RBAC from a Role given to
it); injected 5xx and hung requests. Every call is recorded as
(apiGroup, resource, verb), which is what the RBAC test compares with the
Role. More resources are one entry in ``RESOURCES`` (and a validator if needed).
Custom objects (HTTPRoutes, VirtualServices, InferenceServices, any group and version)
are served by :mod:`tests.harness.k8s.custom`, with the same faults, RBAC and records.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.harness.httpd import QuietHTTPServer
from tests.harness.k8s import custom, deployments
from tests.harness.k8s.custom import merge_patch
from tests.harness.k8s.store import Conflict, NotFound, Obj, Stale, Store, matches

# plural -> (apiGroup, version, kind)
RESOURCES: dict[str, tuple[str, str, str]] = {
    "jobs": ("batch", "v1", "Job"),
    "pods": ("", "v1", "Pod"),
    "configmaps": ("", "v1", "ConfigMap"),
    "leases": ("coordination.k8s.io", "v1", "Lease"),
    "deployments": ("apps", "v1", "Deployment"),
}
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/v1)/namespaces/(?P<ns>[a-z0-9-]+)"
    r"/(?P<res>[a-z]+)(?:/(?P<name>[a-z0-9.-]+)(?:/(?P<sub>[a-z]+))?)?$"
)
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class Fault:
    """The next ``count`` calls of ``verb`` on ``resource`` get ``status`` (0: hang ``delay``
    seconds, then close the connection without an answer)."""

    verb: str
    resource: str
    status: int
    count: int = 1
    delay: float = 0.0
    after: bool = False  # do the call, then answer the fault (a create that "failed" but ran)


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.field = code, reason, message, field

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.field:
            body["details"] = {"causes": [{"field": self.field, "message": self.message}]}
        return body


def validate_job(job: Obj) -> None:
    """The checks a real API server makes that a template can get wrong (422)."""
    name = job.get("metadata", {}).get("name", "")
    if not _DNS.match(name) or len(name) > 63:
        raise ApiError(422, "Invalid", f"metadata.name: Invalid value: {name!r}", "metadata.name")
    pod = job.get("spec", {}).get("template", {}).get("spec", {})
    containers = pod.get("containers") or []
    if not containers:
        field = "spec.template.spec.containers"
        raise ApiError(422, "Invalid", f"{field}: Required value", field)
    for i, c in enumerate(containers):
        if not c.get("image"):
            field = f"spec.template.spec.containers[{i}].image"
            raise ApiError(422, "Invalid", f"{field}: Required value", field)
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        field = "spec.template.spec.restartPolicy"
        value = pod.get("restartPolicy")
        raise ApiError(422, "Invalid", f"{field}: Unsupported value: {value!r}", field)


def validate_deployment(deployment: Obj) -> None:
    try:
        deployments.validate(deployment)
    except deployments.Invalid as exc:
        raise ApiError(422, "Invalid", str(exc), exc.field) from None


VALIDATORS: dict[str, Callable[[Obj], None]] = {
    "jobs": validate_job,
    "deployments": validate_deployment,
}


class Emulator:
    """The API server; ``url`` is what a kubeconfig's ``server`` holds."""

    def __init__(self, role: Mapping[str, Any] | None = None, bookmark_every: float = 0.2) -> None:
        self.store = Store()
        self.deployments = deployments.Deployments(self.store)  # availability: hold/release
        self.role = role
        self.bookmark_every = bookmark_every
        self.calls: set[tuple[str, str, str]] = set()
        self.log: list[tuple[str, str, str, int]] = []  # (verb, resource, name, status)
        self.faults: list[Fault] = []
        self.pod_logs: dict[tuple[str, str], str] = {}
        self.watched_from: list[str] = []  # the resourceVersion of every watch request
        self._lock = threading.Lock()
        self.watches_open = threading.Event()  # cleared: new watch requests wait
        self.watches_open.set()
        self._server = QuietHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Emulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.store.compact()  # ends open watches
        self._server.shutdown()
        self._server.server_close()

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def count(self, verb: str, resource: str, status: int | None = None) -> int:
        with self._lock:
            return sum(
                1 for v, r, _, s in self.log if v == verb and r == resource and status in (None, s)
            )

    def _fault(self, verb: str, resource: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.verb == verb and f.resource == resource and f.count > 0:
                    f.count -= 1
                    return f
        return None

    def allowed(self, group: str, resource: str, verb: str, name: str | None = None) -> bool:
        """RBAC as the API server applies it: a rule with ``resourceNames`` grants only
        requests for one of those names (never a list, watch or create, which name none)."""
        if self.role is None:
            return True
        return any(
            group in r.get("apiGroups", [])
            and resource in r.get("resources", [])
            and (verb in r.get("verbs", []) or "*" in r.get("verbs", []))
            and (not r.get("resourceNames") or name in r["resourceNames"])
            for r in self.role.get("rules", [])
        )

    def handle(
        self, method: str, raw_path: str, body: Obj | None, content_type: str | None = None
    ) -> tuple[int, Any]:
        """Answer one request: (status, JSON body), or (200, watch generator)."""
        url = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route = _route(url.path)
        if route is None:
            return 404, ApiError(404, "NotFound", f"no route {url.path}").status()
        api, res, ns, name, sub = route
        group = api[0]
        verb = _verb(method, name, query)
        resource = f"{res}/{sub}" if sub else res
        with self._lock:
            self.calls.add((group, resource, verb))
        fault = self._fault(verb, resource)
        if fault is not None and fault.after:
            with contextlib.suppress(ApiError):
                self._dispatch(api, verb, res, ns, name, sub, query, body or {}, content_type)
        if fault is not None:
            self._record(verb, resource, name, fault.status)
            if fault.status == 0:
                time.sleep(fault.delay)
                return 0, None
            return fault.status, ApiError(fault.status, "InternalError", "injected").status()
        try:
            if not self.allowed(group, resource, verb, name):
                what = f'{resource} "{name}"' if name else resource
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{what} is forbidden: User cannot {verb} resource "{res}" in API group '
                    f'"{group}" in the namespace "{ns}"',
                )
            status, out = self._dispatch(api, verb, res, ns, name, sub, query, body or {},
                                         content_type)  # fmt: skip
        except ApiError as exc:
            status, out = exc.code, exc.status()
        self._record(verb, resource, name, status)
        return status, out

    def _record(self, verb: str, resource: str, name: str | None, status: int) -> None:
        with self._lock:
            self.log.append((verb, resource, name or "", status))

    def _dispatch(
        self, api: custom.Api, verb: str, res: str, ns: str, name: str | None, sub: str | None,
        query: dict[str, str], body: Obj, content_type: str | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        group, version, kind = api
        api_version = f"{group}/{version}" if group else version
        try:
            if RESOURCES.get(res) != api:
                if verb == "patch" and content_type == deployments.STRATEGIC:
                    # As an API server answers: custom resources have no patch strategy.
                    message = "strategic merge patch is not supported for custom resources"
                    raise ApiError(415, "UnsupportedMediaType", message)
                return custom.dispatch(self.store, api, verb, res, ns, name, sub, body)
            if verb == "create":
                validator = VALIDATORS.get(res)
                if validator is not None:
                    validator(body)
                body.update(apiVersion=api_version, kind=kind)
                if res == "deployments":
                    deployments.created(body)
                return 201, self.store.create(res, ns, body)
            if res == "deployments" and verb in ("get", "list"):
                self.deployments.settle(ns, name)  # the controller acted since the last read
            if verb == "list":
                items, rv = self.store.list(res, ns, query.get("labelSelector"))
                meta = {"resourceVersion": str(rv)}
                return 200, {"apiVersion": api_version, "kind": f"{kind}List",
                             "metadata": meta, "items": items}  # fmt: skip
            if verb == "watch":
                self.watches_open.wait()
                with self._lock:
                    self.watched_from.append(query.get("resourceVersion", ""))
                return 200, self._watch(res, ns, query)
            assert name is not None
            if verb == "get" and sub == "log":
                self.store.get(res, ns, name)
                text = self.pod_logs.get((ns, name), "")
                tail = query.get("tailLines")
                if tail is not None:
                    text = "".join(text.splitlines(keepends=True)[-int(tail) :])
                return 200, text
            if verb == "get":
                return 200, self.store.get(res, ns, name)
            if verb == "patch":
                return 200, self.store.update(res, ns, name, _patcher(res, body, content_type))
            if verb == "update":
                body.update(apiVersion=api_version, kind=kind)
                return 200, self.store.replace(res, ns, name, body)
            if verb == "delete":
                gone = self.store.delete(res, ns, name)
                if res == "jobs":  # background propagation: the Job's Pods go too
                    for pod in self.store.list("pods", ns, f"job-name={name}")[0]:
                        self.store.delete("pods", ns, pod["metadata"]["name"])
                return 200, gone
        except NotFound:
            raise ApiError(404, "NotFound", f'{res} "{name}" not found') from None
        except Stale as exc:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res}.{group or "core"} "{name}": the object '
                f"has been modified; please apply your changes to the latest version and try "
                f"again (stored {exc.stored}, sent {exc.sent})",
            ) from None
        except Conflict:
            raise ApiError(409, "AlreadyExists", f'{res} "{body["metadata"]["name"]}" '
                           "already exists") from None  # fmt: skip
        raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on {res}")

    def _watch(self, res: str, ns: str, query: dict[str, str]) -> Any:
        store, selector = self.store, query.get("labelSelector")
        timeout = float(query.get("timeoutSeconds", "30"))
        bookmarks = query.get("allowWatchBookmarks") == "true"
        group, version, kind = RESOURCES[res]
        api_version = f"{group}/{version}" if group else version
        # Taken when the watch is accepted, not when its stream starts: a close_watches()
        # in between ends it, as on an API server. The role is checked again after, so a
        # role change followed by close_watches() cannot leave a watch of the old role open.
        with store.changed:
            generation = store.generation
        if not self.allowed(group, res, "watch"):
            raise ApiError(403, "Forbidden", f'{res} is forbidden: User cannot watch "{res}"')

        def events() -> Any:
            with store.changed:
                rv = int(query.get("resourceVersion") or store.rv)
                if rv < store.compacted:
                    gone = ApiError(410, "Expired", f"too old resource version: {rv}")
                    yield {"type": "ERROR", "object": gone.status()}
                    return
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                with store.changed:
                    if store.generation != generation:
                        return
                    new = store.events_after(rv, res, ns)
                    if not new:
                        store.changed.wait(self.bookmark_every)
                        new = store.events_after(rv, res, ns)
                    if store.generation != generation:
                        return
                    if new:
                        rv = new[-1].rv
                    last = str(store.rv)
                for e in new:
                    if matches(e.obj, selector):
                        yield {"type": e.type, "object": e.obj}
                if not new and bookmarks:
                    mark = {"kind": kind, "apiVersion": api_version,
                            "metadata": {"resourceVersion": last}}  # fmt: skip
                    yield {"type": "BOOKMARK", "object": mark}

        return events()


def _verb(method: str, name: str | None, query: Mapping[str, str]) -> str:
    if method == "GET":
        if name:
            return "get"
        return "watch" if query.get("watch") in ("true", "1") else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]


def _route(path: str) -> custom.Route | None:
    """(api, resource, namespace, name, subresource) of a path the emulator serves."""
    m = _PATH.match(path)
    if m is not None and RESOURCES.get(m["res"], ("?",))[0] == (m["group"] or ""):
        return RESOURCES[m["res"]], m["res"], m["ns"], m["name"], m["sub"]
    return custom.route(path)


def _patcher(res: str, patch: Obj, content_type: str | None) -> Callable[[Obj], None]:
    """The change a PATCH makes: a strategic merge when the client sent one, else a JSON
    merge; a Deployment's generation grows when its spec changed."""
    merge = deployments.strategic_merge if content_type == deployments.STRATEGIC else merge_patch

    def change(obj: Obj) -> None:
        spec_before = copy.deepcopy(obj.get("spec"))
        merge(obj, patch)
        if res == "deployments":
            deployments.bump_generation(obj, spec_before)

    return change


def _handler(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked watch streams, kept-alive connections

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, out = emulator.handle(
                self.command, self.path, body, self.headers.get("Content-Type")
            )
            if status == 0:
                self.close_connection = True
                return
            if not isinstance(out, dict | str):  # a watch: one chunk per event, as a server
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for event in out:
                        line = json.dumps(event).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True
                return
            data = out.encode() if isinstance(out, str) else json.dumps(out).encode()
            self.send_response(status)
            ctype = "text/plain" if isinstance(out, str) else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815

    return Handler
