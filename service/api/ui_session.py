"""Browser sessions of the overview page: a signed cookie naming the token, and CSRF tokens.

The cookie holds ``<name>.<expiry>.<signature>``, never the bearer token: the
signature is an HMAC-SHA256, under a secret drawn when the process starts, of
the token's name, the expiry and the token's stored digest. A stolen cookie is
therefore worth a bounded session (not the token), and it dies with a restart
or when its token is removed from the config. Scopes are looked up from the
configured token on every request, never read from the cookie.

A form's CSRF token is the HMAC of the session cookie under the same secret
(with a distinct label): a page from another origin can neither read the
cookie nor compute it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime

from service.api.auth import Token, TokenCheck

COOKIE = "driftwatch_session"
LIFETIME_SECONDS = 8 * 3600


class Sessions:
    def __init__(
        self,
        tokens: TokenCheck,
        clock: Callable[[], datetime],
        secret: bytes | None = None,
        lifetime: int = LIFETIME_SECONDS,
    ) -> None:
        self.tokens = tokens
        self.clock = clock
        self.lifetime = lifetime
        self._secret = secrets.token_bytes(32) if secret is None else secret

    def _sign(self, label: bytes, payload: str, token: Token) -> str:
        mac = hmac.new(self._secret, label + b"\0" + payload.encode() + b"\0", hashlib.sha256)
        mac.update(token.digest)
        return mac.hexdigest()

    def issue(self, token: Token) -> str:
        """A cookie value for ``token``, valid for the session lifetime from now."""
        name = base64.urlsafe_b64encode(token.name.encode()).decode().rstrip("=")
        payload = f"{name}.{int(self.clock().timestamp()) + self.lifetime}"
        return f"{payload}.{self._sign(b'session', payload, token)}"

    def read(self, cookie: str | None) -> Token | None:
        """The configured token a cookie value stands for, or None (absent, forged, expired)."""
        if not cookie or cookie.count(".") != 2:
            return None
        name_b64, expiry, signature = cookie.split(".")
        try:
            name = base64.urlsafe_b64decode(name_b64 + "=" * (-len(name_b64) % 4)).decode()
            expires = int(expiry)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        token = next((t for t in self.tokens.tokens if t.name == name), None)
        if token is None:
            return None
        expected = self._sign(b"session", f"{name_b64}.{expiry}", token)
        if not _same(expected, signature):
            return None
        if expires <= self.clock().timestamp():
            return None
        return token

    def csrf(self, cookie: str, token: Token) -> str:
        """The CSRF token that forms of the session ``cookie`` carry."""
        return self._sign(b"csrf", cookie, token)

    def csrf_ok(self, cookie: str, token: Token, presented: str | None) -> bool:
        return presented is not None and _same(self.csrf(cookie, token), presented)


def _same(expected: str, presented: str) -> bool:
    # compare_digest refuses str holding non-ASCII; what a client sends may hold anything.
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace"))
