"""The ``api`` section: where the HTTP API listens and who may call it."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from service.config.base import Duration, Strict

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    # Only the canary verdict endpoints (/v1/.../verdict): what an Argo Rollouts
    # AnalysisTemplate or a Flagger webhook is given, so a leaked one reads no more.
    VERDICT = "verdict"


class TokenConfig(Strict):
    """One bearer token: its sha256 (hex) in the config, or the token itself in a file."""

    name: str = Field(min_length=1)
    sha256: str | None = Field(default=None, description="the token's sha256, 64 hex digits")
    token_file: Path | None = Field(default=None, description="a file holding the token")
    scopes: list[Scope] = Field(min_length=1, description="some of read, write, verdict")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not _SHA256.match(v.lower()):
            raise ValueError("expected the token's sha256 as 64 hex digits")
        return None if v is None else v.lower()

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.sha256 is None) == (self.token_file is None):
            raise ValueError("give exactly one of sha256 and token_file")
        return self


# Session cookies are signed with this secret: at least 256 bits of it, as hex or base64.
MIN_SECRET_CHARS = 32


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="a TCP port; 0 turns the API off")
    tokens: list[TokenConfig] = []
    metrics_open: bool = True
    max_body_bytes: int = Field(default=65536, gt=0, description="a size in bytes")
    # The overview page's session cookie is Secure on https requests regardless.
    cookie_secure: bool = False
    # Signs the overview page's sessions; every replica needs the same one, and it must
    # outlive a restart. Inline (or DRIFTWATCH_API__SESSION_SECRET) or a mounted file.
    session_secret: str | None = Field(
        default=None, min_length=MIN_SECRET_CHARS, repr=False, description="a long secret"
    )
    session_secret_file: Path | None = None
    session_lifetime: Duration = Field(default=8 * 3600.0, gt=0, description="a duration")
    # Sign-in attempts and unknown bearer tokens, per client address (see service.api.throttle).
    login_attempts: int = Field(default=10, ge=1, description="failures allowed per period")
    login_period: Duration = Field(default=60.0, gt=0, description="a duration such as 1m")
    login_clients: int = Field(default=10_000, ge=1, description="client addresses tracked")

    @model_validator(mode="after")
    def _session_secret(self) -> ApiConfig:
        given = [k for k in ("session_secret", "session_secret_file") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError("give one of session_secret and session_secret_file")
        if self.port and not given:
            raise ValueError(
                "the API (api.port) serves the overview page, whose sessions need "
                "session_secret (or DRIFTWATCH_API__SESSION_SECRET) or session_secret_file, "
                f"at least {MIN_SECRET_CHARS} characters, the same on every replica"
            )
        return self

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, v: list[TokenConfig]) -> list[TokenConfig]:
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError("two tokens share a name")
        return v
