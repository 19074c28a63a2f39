"""uvicorn serving the API on a thread of the ``driftwatch run`` process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from service.errors import ServiceError

log = logging.getLogger(__name__)


@dataclass
class ApiServer:
    server: uvicorn.Server
    thread: threading.Thread
    # What the routes hold that must end with the server (the API's rendering worker).
    on_close: list[Callable[[], None]] = field(default_factory=list)

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the one the OS chose for 0)."""
        sockets = self.server.servers[0].sockets
        port: int = sockets[0].getsockname()[1]
        return port

    def close(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        for close in self.on_close:
            close()


def serve(app: FastAPI, host: str, port: int, *, wait: Callable[[float], bool]) -> ApiServer:
    """Start serving ``app``; return once it listens, or raise ServiceError naming api.port.

    ``wait(seconds)`` waits up to that long (a stop event's wait, in the runner).
    """
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="driftwatch-api", daemon=True)
    thread.start()
    # uvicorn leaves signals alone off the main thread: the service keeps SIGTERM/SIGINT.
    for _ in range(200):
        if server.started:
            return ApiServer(server, thread)
        if not thread.is_alive():
            break
        wait(0.05)
    server.should_exit = True
    thread.join(5.0)
    raise ServiceError(f"cannot serve the API on {host}:{port} (api.host, api.port)")
