"""A local webhook receiver for ``make demo``: checks each alert's signature and prints it.

The service's ``webhook`` channel signs ``<timestamp>.<body>`` with the shared secret
(:mod:`service.alerts.webhook`); an alert with a wrong signature is answered 401 and
not printed, so a printed alert is one the service really delivered.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from service.alerts.webhook import signature


@dataclass(frozen=True)
class Delivered:
    """One alert as received: when (epoch s) and its JSON body."""

    at: float
    body: dict[str, Any]


class AlertPrinter:
    """A webhook receiver on 127.0.0.1 (a free port) in a thread, as a context manager."""

    def __init__(self, secret: str, start: float) -> None:
        self.secret = secret.encode()
        self.start = start  # printed times are seconds from here
        self.received: list[Delivered] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="alert-printer", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def __enter__(self) -> AlertPrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def alerts(self) -> list[Delivered]:
        with self._lock:
            return list(self.received)

    def take(self, content: bytes, stamp: str, given: str) -> int:
        """The HTTP status for one delivery; a signed one is recorded and printed."""
        if not hmac.compare_digest(given, signature(self.secret, stamp, content)):
            return 401
        try:
            body = json.loads(content)
        except ValueError:
            return 400
        if not isinstance(body, dict):
            return 400
        now = time.time()
        line = (
            f"  [+{now - self.start:5.1f}s] alert delivered to the webhook: "
            f"{body.get('severity')} {body.get('kind')} ({body.get('action')}): "
            f"{body.get('message')}"
        )
        with self._lock:  # deliveries arrive on several threads: one line each
            self.received.append(Delivered(now, body))
            print(line, flush=True)
        return 204


def _handler(printer: AlertPrinter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # the deliveries are printed by take(); the access log would repeat them

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            content = self.rfile.read(length)
            status = printer.take(
                content,
                self.headers.get("X-Driftwatch-Timestamp", ""),
                self.headers.get("X-Driftwatch-Signature", ""),
            )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
