"""The tests' stdlib HTTP servers, quiet about clients that hang up.

``socketserver`` prints a traceback to stderr for any error a handler raises,
including a client closing its connection mid-request or mid-response (a watch
the Kubernetes client stops reading, a request whose deadline passed), which the
tests do on purpose and the receivers of a real deployment see all the time. Those
are dropped; any other error is printed as before.
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
