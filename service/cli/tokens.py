"""``driftwatch api hash-token``: the sha256 that ``api.tokens[].sha256`` takes for a token.

The token is read from standard input (not echoed when that is a terminal) or from
a file, never from the command line, where it would land in the shell's history
and in the process list. It is stripped of surrounding whitespace first, as the
service strips what a ``token_file`` holds, so a token file and its printed hash
configure the same token.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from service.errors import ServiceError


def _read_token(args: argparse.Namespace) -> str:
    if args.file is not None:
        try:
            return Path(args.file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ServiceError(f"--file: cannot read {args.file}: {exc}") from exc
    if sys.stdin.isatty():
        return getpass.getpass("token: ").strip()
    return sys.stdin.read().strip()


def cmd_hash_token(args: argparse.Namespace) -> int:
    from service.api.auth import digest

    token = _read_token(args)
    if not token:
        raise ServiceError("the token is empty (give it on standard input or with --file)")
    print(digest(token).hex())
    return 0


def add_api_commands(sub: Any) -> None:
    api = sub.add_parser("api", help="the HTTP API's tokens")
    api_sub = api.add_subparsers(dest="api_command", required=True)
    hashed = api_sub.add_parser(
        "hash-token",
        help="print the sha256 of a token read from standard input (or --file), "
        "for api.tokens[].sha256",
    )
    hashed.add_argument("--file", help="read the token from this file (as token_file does)")
    hashed.set_defaults(func=cmd_hash_token)
