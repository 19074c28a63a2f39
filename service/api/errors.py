"""Errors the API answers with, and the handlers that turn every error into JSON.

ApiError              an answer with a status and a message (never a stack trace)
├── Unauthorized      401: no token, or a token that is not known
├── Forbidden         403: a known token without the scope the route needs
├── NotFound          404: the model, report or run does not exist
├── Conflict          409: the request collides with stored state (an active run)
├── PayloadTooLarge   413: the body is larger than ``api.max_body_bytes``
└── TooManyRequests   429: the client failed too often (``api.login_attempts``)
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from db.errors import StoreError

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class TooManyRequests(ApiError):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_body(message: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, **extra}


def install_handlers(app: FastAPI) -> None:
    """Every failure becomes ``{"message": ...}``; unexpected ones are logged, not shown."""

    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(
            error_body(exc.message, **exc.extra), status_code=exc.status, headers=headers
        )

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "problem": str(e["msg"])}
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"location": "request", "problem": "invalid"}
        message = f"{first['location']}: {first['problem']}"
        return JSONResponse(error_body(message, problems=problems), status_code=422)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    async def store_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StoreError)
        if exc.retriable:
            log.warning("database error answering a request: %s", exc)
            return JSONResponse(error_body("the database is unavailable; retry"), 503)
        # Not the database being away but a request it refused: a bug to trace.
        log.error("database error answering a request", exc_info=exc)
        return JSONResponse(error_body("internal error"), status_code=500)

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error answering a request", exc_info=exc)
        return JSONResponse(error_body("internal error"), status_code=500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(Exception, unexpected)
