"""The tests' HTTP servers stay quiet about clients that hang up, and only about them."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest

from tests.harness.httpd import QuietHTTPServer


class Failing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/reset":
            raise ConnectionResetError(104, "Connection reset by peer")
        raise ValueError("a bug in a handler")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving() -> Iterator[int]:
    server = QuietHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def get(port: int, path: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        with pytest.raises(http.client.RemoteDisconnected):
            connection.getresponse()
    finally:
        connection.close()


def test_a_client_that_hung_up_prints_nothing_and_a_handlers_bug_its_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with serving() as port:
        get(port, "/reset")
        get(port, "/bug")
    # Each error was handled before the server closed its connection, which get() waits for.
    err = capfd.readouterr().err
    assert "ConnectionResetError" not in err
    assert "ValueError: a bug in a handler" in err
