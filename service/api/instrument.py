"""Request counts and durations for Prometheus, by route template rather than path.

The label is the template of the route that answered (``/v1/runs/{run_id}``),
as the router leaves it in the ASGI scope, so every run id shares one series;
a request answered before routing (a body over the limit) is matched on the
routes the way the router would. A path no route matches is ``unmatched``, and
a method outside the HTTP standard is ``other``: a client cannot create series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import HttpMetrics

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The template of the route the router would pick: the first full match, else the
    first partial one (the path matches, the method does not: a 405)."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        if match is Match.FULL:
            return path
        if match is Match.PARTIAL and partial is None:
            partial = path
    return partial or UNMATCHED


class RequestMetrics:
    """Counts every HTTP request by route, method and status, and times it; a request
    whose handler raised counts as the 500 the server answers."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        metrics: HttpMetrics,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = 500
        started = self.clock()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            routed = getattr(scope.get("route"), "path", None)
            route = routed if isinstance(routed, str) else route_template(self.routes, scope)
            self.metrics.observe(route, method, status, self.clock() - started)
