"""Browser sessions of the overview page: a signed session id in a cookie, the session
itself in SQL, and CSRF tokens.

The cookie holds an itsdangerous ``TimestampSigner`` signature (HMAC-SHA256 under
``api.session_secret``) of a random session id, never the bearer token. Whether
the session stands is decided in SQL (``db.ui_sessions``): it must be stored, not
expired, not revoked by signing out, and opened with the token that still has
that name and digest in the config. Every replica with the same secret and
database therefore accepts it, a restart keeps it, and signing out ends it on
all of them. Scopes are looked up from the configured token on every request,
never read from the cookie.

A form's CSRF token is a signature of the session id under the same secret with
another salt: a page from another origin can neither read the cookie nor compute it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from itsdangerous import BadSignature, Signer, TimestampSigner
from sqlalchemy.orm import Session, sessionmaker

from db.session import transaction
from db.ui_sessions import UiSessionRepository
from service.api.auth import Token, TokenCheck

COOKIE = "driftwatch_session"


class _ClockSigner(TimestampSigner):
    """Timestamps from the injected clock, so a session's age is judged by one clock."""

    def __init__(self, secret: str, clock: Callable[[], datetime]) -> None:
        super().__init__(secret, salt="driftwatch-session", digest_method=hashlib.sha256)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock().timestamp())


class Sessions:
    def __init__(
        self,
        tokens: TokenCheck,
        db: sessionmaker[Session],
        clock: Callable[[], datetime],
        secret: str,
        lifetime: float,
    ) -> None:
        self.tokens = tokens
        self.db = db
        self.clock = clock
        self.lifetime = int(lifetime)
        self._cookies = _ClockSigner(secret, clock)
        self._csrf = Signer(secret, salt="driftwatch-csrf", digest_method=hashlib.sha256)

    def issue(self, token: Token) -> str:
        """Open a session for ``token``; the cookie value that names it."""
        sid = secrets.token_hex(32)
        now = self.clock()
        with transaction(self.db) as s:
            UiSessionRepository(s).open(
                sid, token.name, token.digest.hex(), now, now + timedelta(seconds=self.lifetime)
            )
        return self._cookies.sign(sid).decode()

    def _sid(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            return self._cookies.unsign(cookie, max_age=self.lifetime).decode()
        except (BadSignature, UnicodeError):
            # BadSignature covers SignatureExpired and malformed values.
            return None

    def read(self, cookie: str | None) -> Token | None:
        """The configured token a cookie value stands for, or None (absent, forged,
        expired, revoked, or its token removed or replaced in the config)."""
        sid = self._sid(cookie)
        if sid is None:
            return None
        with transaction(self.db) as s:
            stored = UiSessionRepository(s).live(sid, self.clock())
        if stored is None:
            return None
        token = next((t for t in self.tokens.tokens if t.name == stored.token_name), None)
        if token is None or not hmac.compare_digest(token.digest.hex(), stored.token_sha256):
            return None
        return token

    def revoke(self, cookie: str | None) -> None:
        """End the session the cookie names, for every replica; a bad cookie is ignored."""
        sid = self._sid(cookie)
        if sid is not None:
            with transaction(self.db) as s:
                UiSessionRepository(s).revoke(sid, self.clock())

    def csrf(self, cookie: str, token: Token) -> str:
        """The CSRF token that forms of the session ``cookie`` carry."""
        return self._csrf.get_signature(cookie).decode()

    def csrf_ok(self, cookie: str, token: Token, presented: str | None) -> bool:
        # verify_signature compares in constant time and answers False to anything malformed.
        return presented is not None and self._csrf.verify_signature(cookie, presented)
