"""The one POST every HTTP channel makes, and what its answer means for a retry."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from service.alerts.base import Outcome

# 408 and 429 say "later", like a 5xx; any other 4xx will fail the same way again.
_RETRIABLE_4XX = frozenset({408, 429})


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def classify(response: httpx.Response, now: datetime) -> Outcome:
    code = response.status_code
    if 200 <= code < 300:
        return Outcome.delivered()
    error = f"HTTP {code}: {response.text[:200]}"
    retriable = code >= 500 or code in _RETRIABLE_4XX
    wait = retry_after(response.headers.get("Retry-After"), now) if retriable else None
    return Outcome(ok=False, retriable=retriable, error=error, retry_after=wait)


def body(payload: Any) -> bytes:
    """The exact bytes sent, so a signature can be computed over them."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def post(
    client: httpx.Client,
    url: str,
    content: bytes,
    now: datetime,
    headers: Mapping[str, str] | None = None,
) -> Outcome:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    try:
        response = client.post(url, content=content, headers=all_headers)
    except httpx.TimeoutException as exc:
        return Outcome(ok=False, retriable=True, error=f"timed out: {exc}")
    except httpx.TransportError as exc:
        return Outcome(ok=False, retriable=True, error=f"{type(exc).__name__}: {exc}")
    return classify(response, now)


def make_client(timeout: float) -> httpx.Client:
    return httpx.Client(timeout=timeout, follow_redirects=False)
