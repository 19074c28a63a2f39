"""Keeping channel credentials out of logs and stored errors.

A channel's URL can be its credential (a Slack incoming webhook's path), can carry
``user:password@`` (Alertmanager or a webhook behind basic auth) or a token in its
query. Wherever driftwatch names a URL in a log line or a stored error it uses
:func:`mask_url`: scheme, host and port only. :func:`redact` removes known secret
strings (the URL itself, routing keys, API keys, signing secrets) from any text
that came back from the network, since a receiver may echo them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
_SHORTEST_SECRET = 8
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/***``: scheme, host and port, nothing that may be secret
    (userinfo, path, query, fragment)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return MASK
    rest = "/" + MASK if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def url_secrets(url: str) -> list[str]:
    """Every part of ``url`` that may be a credential on its own: the URL, its userinfo
    and password, its path (a Slack hook's path is the token), its query and values."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return [url]
    found = [url, parts.netloc.rpartition("@")[0], password or ""]
    found += [parts.query, parts.fragment, parts.path]
    segments = [p for p in parts.path.split("/") if p]
    # Each tail of the path and each segment: a token may be echoed without its prefix.
    found += ["/".join(segments[i:]) for i in range(len(segments))] + segments
    found += [value for _, value in parse_qsl(parts.query)]
    # A short part ("/x", "v2") would mask every occurrence of itself in any text.
    return [f for f in found if len(f) >= _SHORTEST_SECRET]


def redact(text: str, secrets: Iterable[str], replacement: str = MASK) -> str:
    """``text`` with every non-empty secret replaced (longest first, so a URL is replaced
    whole before a token inside it), any other URL masked, and control characters escaped
    (a receiver's answer ends up in a log line)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, replacement)
    return printable(_URL.sub(lambda m: mask_url(m.group(0)), text))


class MaskUrls(logging.Filter):
    """Masks every URL in a record's message, for loggers of libraries that log them
    (defence in depth: :func:`service.alerts.http.quiet_http_logs` also raises their
    level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = _URL.sub(lambda m: mask_url(m.group(0)), message), None
        return True


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with control characters (newlines included) shown as escapes, so a value
    from the stream stays one line in a log or one label value."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)
