"""The one POST every HTTP channel makes, and what its answer means for a retry.

Everything a receiver sends back is untrusted: the status, the ``Retry-After``
header and the body are read here, by the RFC and within bounds, so that no
answer can raise past :func:`post` or park a delivery beyond the worker's clamp.
Only a bounded prefix of the body is read (:data:`BODY_LIMIT`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from service.alerts.base import Outcome
from service.alerts.masking import MaskUrls, mask_url, redact, url_secrets

# 408 and 429 say "later", like a 5xx; any other 4xx will fail the same way again.
_RETRIABLE_4XX = frozenset({408, 429})
# RFC 9110 10.2.3: delta-seconds = 1*DIGIT, and DIGIT is ASCII 0-9 only (RFC 5234 B.1);
# ``str.isdigit`` would also take "²" or "٣".
_DELTA_SECONDS = re.compile(r"[0-9]+", re.ASCII)
# Far beyond any clamp, yet small enough that float() and timedelta() never overflow.
_FAR_SECONDS = 10**10
BODY_LIMIT = 4096
# The text of an error kept in the outbox and in the log.
_ERROR_CHARS = 200


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 10.2.3): delta-seconds or an
    HTTP-date; None when the value is neither. A date in the past means now."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        # Compared as integers: a 400-digit value must not reach float().
        return float(min(int(value), _FAR_SECONDS))
    if not value or not value.isascii():
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # An HTTP-date is always GMT (RFC 9110 5.6.7); "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return min(max(0.0, seconds), float(_FAR_SECONDS))


def classify(status: int, headers: httpx.Headers, text: str, now: datetime) -> Outcome:
    if 200 <= status < 300:
        return Outcome.delivered()
    error = f"HTTP {status}: {text[:_ERROR_CHARS]}"
    retriable = status >= 500 or status in _RETRIABLE_4XX
    wait = retry_after(headers.get("Retry-After"), now) if retriable else None
    return Outcome(ok=False, retriable=retriable, error=error, retry_after=wait)


def body(payload: Any) -> bytes:
    """The exact bytes sent, so a signature can be computed over them."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


async def post(
    client: httpx.AsyncClient,
    url: str,
    content: bytes,
    now: datetime,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> Outcome:
    """POST ``content``; never raises on what the network or the receiver does. Every error
    text has ``url`` masked and ``secrets`` removed, since it is stored and logged."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    hidden = [*url_secrets(url), *secrets]
    try:
        async with client.stream("POST", url, content=content, headers=all_headers) as answer:
            text = await _prefix(answer)
            outcome = classify(answer.status_code, answer.headers, text, now)
    except httpx.TimeoutException as exc:
        outcome = Outcome(ok=False, retriable=True, error=f"timed out: {exc}")
    except (httpx.TransportError, httpx.StreamError) as exc:
        outcome = Outcome(ok=False, retriable=True, error=f"{type(exc).__name__}: {exc}")
    if outcome.error is not None:
        error = redact(outcome.error, hidden, mask_url(url))
        outcome = Outcome(outcome.ok, outcome.retriable, error, outcome.retry_after)
    return outcome


async def _prefix(answer: httpx.Response) -> str:
    """The first :data:`BODY_LIMIT` bytes of the body, decoded leniently."""
    data = b""
    async for chunk in answer.aiter_raw():
        data += chunk
        if len(data) >= BODY_LIMIT:
            break
    return data[:BODY_LIMIT].decode("utf-8", errors="replace")


def make_client(timeout: float) -> httpx.AsyncClient:
    """A client per channel; ``timeout`` bounds each network operation, while the worker
    bounds the whole request (``deadline``)."""
    quiet_http_logs()
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False)


def quiet_http_logs() -> None:
    """httpx logs every request with its full URL at INFO, httpcore its connections at
    DEBUG; a Slack webhook URL is itself the credential and other URLs may carry
    ``user:password@``. Both loggers are held at WARNING (which they never use for a
    URL), so whatever level the root logger runs at, no request line is emitted."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, MaskUrls) for f in logger.filters):
            logger.addFilter(MaskUrls())
