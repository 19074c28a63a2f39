"""Real local HTTP receivers standing in for Slack, PagerDuty, Opsgenie, Alertmanager and a
signed webhook.

Each one checks the request the way its vendor documents it and answers like it
(PagerDuty 202 ``{"status": "success"}``, Opsgenie 202 with a ``requestId``, Slack
``ok``, Alertmanager 200); a malformed request gets a 400 naming what is wrong. They
keep what they accepted and the resulting state (open incidents, firing alerts), can
be told to fail the next requests with a status (and ``Retry-After``), to give the
next requests any answer at all (``answer_next``: status, raw headers, body), to hold a
call open until ``release`` and hang up without answering (``hang_up``), which is what
a receiver sees when the sender is killed mid-call, or to answer 200 and then trickle
the body one byte a second (``trickle``) until ``release`` or until the sender hangs up
(``cut`` is set then).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.harness.httpd import QuietHTTPServer

Checked = tuple[int, Any]  # status, JSON (or text) answer


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass(frozen=True)
class Answer:
    """A scripted answer, sent as given (a header value may be anything latin-1 allows)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass
class Receiver:
    """One receiver; ``accepted`` holds the requests it answered with a 2xx."""

    kind: str
    check: Callable[[Receiver, Request], Checked]
    secret: str = ""
    received: list[Request] = field(default_factory=list)
    accepted: list[Request] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    failures: list[tuple[int, str | None]] = field(default_factory=list)
    hang_up: int = 0
    script: list[Answer] = field(default_factory=list)
    trickle: int = 0
    trickling: threading.Event = field(default_factory=threading.Event)
    cut: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    seen: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def fail_next(self, times: int, status: int = 503, retry_after: str | None = None) -> None:
        self.failures.extend([(status, retry_after)] * times)

    def answer_next(self, *answers: Answer) -> None:
        with self.seen:
            self.script.extend(answers)

    def wait_received(self, count: int, timeout: float = 30.0) -> bool:
        with self.seen:
            return self.seen.wait_for(lambda: len(self.received) >= count, timeout)


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(what)


def _iso(value: Any, what: str) -> datetime:
    _require(isinstance(value, str), f"{what} must be an RFC 3339 string")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} is not RFC 3339: {value!r}") from None


def check_slack(rx: Receiver, req: Request) -> Checked:
    body = req.json
    _require(isinstance(body.get("text"), str) and body["text"] != "", "text is required")
    for block in body.get("blocks", []):
        _require(block.get("type") in {"section", "header", "context", "divider"}, "block type")
    return 200, "ok"


_PD_SEVERITIES = {"critical", "error", "warning", "info"}


def check_pagerduty(rx: Receiver, req: Request) -> Checked:
    _require(req.path == "/v2/enqueue", f"unknown path {req.path}")
    body = req.json
    _require(body.get("routing_key") == rx.secret, "invalid routing_key")
    action = body.get("event_action")
    _require(action in {"trigger", "acknowledge", "resolve"}, "event_action")
    key = body.get("dedup_key")
    _require(key is None or (isinstance(key, str) and len(key) <= 255), "dedup_key (<= 255)")
    if action == "trigger":
        p = body.get("payload") or {}
        _require(isinstance(p.get("summary"), str) and 0 < len(p["summary"]) <= 1024, "summary")
        _require(isinstance(p.get("source"), str) and p["source"] != "", "payload.source")
        _require(p.get("severity") in _PD_SEVERITIES, "payload.severity")
        if "timestamp" in p:
            _iso(p["timestamp"], "payload.timestamp")
        key = key or "generated"
        rx.state[key] = "triggered"
    else:
        _require(isinstance(key, str) and key != "", f"{action} needs dedup_key")
        rx.state[key] = "resolved"
    return 202, {"status": "success", "message": "Event processed", "dedup_key": key}


def check_opsgenie(rx: Receiver, req: Request) -> Checked:
    _require(req.headers.get("authorization") == f"GenieKey {rx.secret}", "GenieKey")
    body = req.json
    parts = req.path.strip("/").split("/")
    if parts == ["v2", "alerts"]:
        msg = body.get("message")
        _require(isinstance(msg, str) and 0 < len(msg) <= 130, "message (1..130 chars)")
        alias = body.get("alias")
        _require(alias is None or (isinstance(alias, str) and len(alias) <= 512), "alias")
        _require(body.get("priority", "P3") in {"P1", "P2", "P3", "P4", "P5"}, "priority")
        tags = body.get("tags", [])
        _require(all(isinstance(t, str) and len(t) <= 50 for t in tags), "tags (<= 50 chars)")
        _require(len(body.get("entity", "")) <= 512, "entity (<= 512 chars)")
        details = body.get("details", {})
        _require(all(isinstance(v, str) for v in details.values()), "details are strings")
        rx.state[alias] = "open"
    elif len(parts) == 4 and parts[:2] == ["v2", "alerts"] and parts[3] == "close":
        _require(req.query.get("identifierType") == ["alias"], "identifierType=alias")
        rx.state[unquote(parts[2])] = "closed"
    else:
        raise ValueError(f"unknown path {req.path}")
    return 202, {"result": "Request will be processed", "took": 0.01, "requestId": "r"}


def check_alertmanager(rx: Receiver, req: Request) -> Checked:
    _require(req.path == "/api/v2/alerts", f"unknown path {req.path}")
    body = req.json
    _require(isinstance(body, list) and body != [], "a non-empty list of postable alerts")
    for alert in body:
        labels = alert.get("labels")
        _require(isinstance(labels, dict) and labels != {}, "labels")
        _require(all(isinstance(v, str) for v in labels.values()), "label values are strings")
        _require(bool(labels.get("alertname")), "labels.alertname is required")
        for name in ("startsAt", "endsAt"):
            if name in alert:
                _iso(alert[name], name)
        rx.state[json.dumps(labels, sort_keys=True)] = alert
    return 200, ""


def check_webhook(rx: Receiver, req: Request) -> Checked:
    stamp = req.headers.get("x-driftwatch-timestamp", "")
    mac = hmac.new(rx.secret.encode(), stamp.encode() + b"." + req.raw, hashlib.sha256)
    given = req.headers.get("x-driftwatch-signature", "")
    if not hmac.compare_digest(given, "sha256=" + mac.hexdigest()):
        return 401, {"error": "bad signature"}
    body = req.json
    for key in ("id", "model", "kind", "action", "severity", "dedup_key", "message"):
        _require(key in body, f"{key} is required")
    rx.state[body["dedup_key"]] = body["action"]
    return 204, None


CHECKS: dict[str, Callable[[Receiver, Request], Checked]] = {
    "slack": check_slack,
    "pagerduty": check_pagerduty,
    "opsgenie": check_opsgenie,
    "alertmanager": check_alertmanager,
    "webhook": check_webhook,
}


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            req = Request(
                "POST",
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                raw,
            )
            with rx.seen:
                rx.received.append(req)
                rx.seen.notify_all()
                hang = rx.hang_up > 0
                rx.hang_up -= 1 if hang else 0
                trickle = not hang and rx.trickle > 0
                rx.trickle -= 1 if trickle else 0
                scripted = rx.script.pop(0) if rx.script and not (hang or trickle) else None
                failure = rx.failures.pop(0) if rx.failures and not hang else None
            if trickle:
                return self._trickle(req)
            if scripted is not None:
                return self._scripted(scripted)
            if hang:
                # Holds the call open, as a receiver does while the sender is killed.
                rx.release.wait()
                self.close_connection = True
                self.connection.close()
                return
            if failure is not None:
                status, retry_after = failure
                headers = {"Retry-After": retry_after} if retry_after else {}
                return self._answer(status, {"error": "unavailable"}, headers)
            try:
                if self.headers.get("Content-Type") != "application/json":
                    raise ValueError("Content-Type must be application/json")
                status, answer = rx.check(rx, req)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                status, answer = 400, {"error": str(exc)}
            if 200 <= status < 300:
                with rx.seen:
                    rx.accepted.append(req)
            self._answer(status, answer, {})

        def _trickle(self, req: Request) -> None:
            size = 10**6
            data = b'{"status": "success"}'.ljust(size)
            self.send_response(202)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            rx.trickling.set()
            sent = 0
            try:
                while not rx.release.wait(1.0):
                    self.wfile.write(data[sent : sent + 1])
                    self.wfile.flush()
                    sent += 1
                with rx.seen:
                    rx.accepted.append(req)
                # Released: the rest at once, so the sender gets its complete answer.
                self.wfile.write(data[sent:])
            except OSError:
                if not rx.release.is_set():
                    rx.cut.set()  # the sender hung up mid-body
            finally:
                rx.trickling.clear()

        def _scripted(self, answer: Answer) -> None:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def _answer(self, status: int, answer: Any, headers: dict[str, str]) -> None:
            data = (
                b""
                if answer is None
                else (answer.encode() if isinstance(answer, str) else json.dumps(answer).encode())
            )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)

    return Handler


@contextmanager
def receiver(kind: str, secret: str = "") -> Iterator[Receiver]:
    """A receiver of ``kind`` on a free loopback port, shut down on leaving."""
    rx = Receiver(kind, CHECKS[kind], secret)
    server = QuietHTTPServer(("127.0.0.1", 0), _handler(rx))
    rx.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name=f"rx-{kind}", daemon=True
    )
    thread.start()
    try:
        yield rx
    finally:
        rx.release.set()
        server.shutdown()
        server.server_close()
