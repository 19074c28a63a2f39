"""Bearer tokens with scopes, kept as sha256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.errors import Forbidden, TooManyRequests, Unauthorized
from service.api.throttle import Throttle, TooManyAttempts
from service.config.api import Scope, TokenConfig
from service.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    digest: bytes
    scopes: frozenset[Scope]


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def load_tokens(configs: Sequence[TokenConfig]) -> tuple[Token, ...]:
    """The configured tokens; a token file that cannot be read stops start-up, naming it."""
    tokens: list[Token] = []
    problems: list[str] = []
    for i, t in enumerate(configs):
        if t.sha256 is not None:
            tokens.append(Token(t.name, bytes.fromhex(t.sha256), frozenset(t.scopes)))
            continue
        assert t.token_file is not None
        key = f"config: api.tokens[{i}].token_file"
        try:
            secret = Path(t.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{key}: cannot read {t.token_file}: {exc}")
            continue
        if not secret:
            problems.append(f"{key}: {t.token_file} is empty")
            continue
        tokens.append(Token(t.name, digest(secret), frozenset(t.scopes)))
    if problems:
        raise ConfigError(problems)
    return tuple(tokens)


class TokenCheck:
    """Which known token, if any, a presented bearer token is; unknown tokens are
    throttled per client address (see :mod:`service.api.throttle`)."""

    def __init__(self, tokens: Sequence[Token], throttle: Throttle | None = None) -> None:
        self.tokens = tuple(tokens)
        self.throttle = throttle or Throttle(10, 60.0, 10_000, time.monotonic)

    def attempt(self, client: str, presented: str) -> Token | None:
        """:meth:`identify`, for ``client``: TooManyAttempts while it is throttled, and an
        unknown token counts against it."""
        self.throttle.check(client)
        token = self.identify(presented)
        if token is None:
            self.throttle.failed(client)
        return token

    def identify(self, presented: str) -> Token | None:
        # Every stored digest is compared, so the time taken says nothing about which matched.
        wanted = digest(presented)
        found: Token | None = None
        for t in self.tokens:
            if hmac.compare_digest(wanted, t.digest):
                found = t
        return found


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


bearer = HTTPBearer(auto_error=False, description="a token with the read or write scope")


def authorize(
    check: TokenCheck,
    credentials: HTTPAuthorizationCredentials | None,
    scope: Scope,
    client: str,
) -> Token:
    """The presented token when it is known and holds ``scope``; Unauthorized or Forbidden
    otherwise, TooManyRequests while ``client`` is throttled for unknown tokens (the scope
    guards in :mod:`service.api.deps` call it per request)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    try:
        token = check.attempt(client, credentials.credentials)
    except TooManyAttempts as exc:
        raise TooManyRequests(
            f"too many unknown tokens from this address; retry after {exc.retry_after} s",
            exc.retry_after,
        ) from None
    if token is None:
        raise Unauthorized("the bearer token is not known")
    if scope not in token.scopes:
        raise Forbidden(f"the token {token.name!r} lacks the {scope} scope")
    return token
