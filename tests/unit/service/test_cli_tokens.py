"""``driftwatch api hash-token``: the printed hash configures the same token as a token file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from service.api.auth import TokenCheck, load_tokens
from service.cli import main
from service.config.api import Scope, TokenConfig

TOKEN = "demo-admin-token-0123456789"


def test_the_hash_of_a_token_on_stdin_identifies_it_like_its_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{TOKEN}\n"))
    assert main(["api", "hash-token"]) == 0
    printed = capsys.readouterr().out
    assert printed.endswith("\n") and len(printed.strip()) == 64
    token_file = tmp_path / "admin.token"
    token_file.write_text(f"  {TOKEN}\n", encoding="utf-8")
    assert main(["api", "hash-token", "--file", str(token_file)]) == 0
    assert capsys.readouterr().out == printed
    check = TokenCheck(
        load_tokens(
            [
                TokenConfig(name="hashed", sha256=printed.strip(), scopes=[Scope.READ]),
                TokenConfig(name="filed", token_file=token_file, scopes=[Scope.WRITE]),
            ]
        )
    )
    (hashed, filed) = check.tokens
    assert hashed.digest == filed.digest
    found = check.identify(TOKEN)
    assert found is not None and found.digest == hashed.digest
    assert check.identify(TOKEN + "x") is None


def test_an_empty_or_unreadable_token_is_refused_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    assert main(["api", "hash-token"]) == 1
    assert "the token is empty" in capsys.readouterr().err
    missing = tmp_path / "nope"
    assert main(["api", "hash-token", "--file", str(missing)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and f"--file: cannot read {missing}" in captured.err
