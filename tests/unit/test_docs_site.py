"""The documentation site: it builds with ``mkdocs build --strict`` (a broken link or
anchor fails), its generated reference pages are current, every configuration key is
described, and every configuration key, command and API route the docs name exists."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from docgen import api_ref, cli_ref, config_ref
from docgen.__main__ import PAGES
from service.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
GENERATED = {ROOT / page for page in PAGES}
# A backticked span, or a line of a fenced block: where docs name keys and commands.
SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
# A dotted key path, not part of a longer path (``$.features.amount``, ``deploy/x.yaml``).
KEYISH = re.compile(r"(?<![\w$./-])[a-z_]+(?:\.(?:[a-z0-9_]+|<name>|\*)(?:\[\])?)+")
FILE = re.compile(r"\.(?:py|ya?ml|json|md|txt|toml|html|csv|parquet|skops)$")
# driftwatch's own routes (/v1), not the receivers' the alert channels call.
ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/v1/[^\s`?,]*)")
# `kubectl -n driftwatch ...` names a namespace, not a command.
COMMAND = re.compile(r"(?<![\w/.-])(?<!-n )driftwatch((?: [a-z][a-z-]*){1,2})")


@pytest.mark.parametrize("page", sorted(PAGES), ids=lambda p: Path(p).name)
def test_the_generated_reference_page_is_current(page: str) -> None:
    committed = (ROOT / page).read_text(encoding="utf-8")
    assert committed == PAGES[page](), f"{page} is stale: run `make docs` and commit it"


def test_every_configuration_key_is_described() -> None:
    assert config_ref.undocumented() == [], (
        "describe these keys with Field(description=...) in service/config/ or in "
        "docgen/config_descriptions.yaml"
    )
    assert config_ref.stale_descriptions() == [], "described in docgen/ but not in the schema"


def test_the_site_builds_with_strict_link_and_anchor_checks(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "reference" / "config" / "index.html").is_file()


def _code(path: Path) -> Iterator[str]:
    """The backticked spans and fenced lines of a page (its generated parts left out)."""
    text = path.read_text(encoding="utf-8")
    for block in FENCE.findall(text):
        yield from block.splitlines()
    yield from SPAN.findall(FENCE.sub("", text))


def _key_patterns() -> list[re.Pattern[str]]:
    patterns = []
    # A mapping's entry is a key too: models.fraud, alerts.channels.oncall.
    entries = {
        key.path[: m.end()]
        for key in config_ref.config_keys()
        for m in re.finditer("<name>", key.path)
    }
    for path in entries:
        patterns.append(re.compile(re.escape(path).replace(re.escape("<name>"), r"[^.\[]+")))
    for key in config_ref.config_keys():
        pattern = re.escape(key.path).replace(re.escape("<name>"), r"[^.\[]+")
        pattern = pattern.replace(re.escape("[]"), r"(?:\[\])?")
        if key.type.startswith("mapping of str to") and "section" not in key.type:
            pattern += r"(?:\..+)?"  # free-form keys: kafka.consumer.session_timeout_ms
        patterns.append(re.compile(pattern))
    return patterns


def _is_code(token: str) -> bool:
    """A dotted name that is Python (``drift.evaluate``, ``retrain.trainer``)."""
    parts = token.split(".")
    for end in range(len(parts), 1, -1):
        try:
            if importlib.util.find_spec(".".join(parts[:end])) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def _named_keys() -> Iterator[tuple[Path, str]]:
    paths = [key.path for key in config_ref.config_keys()]
    top = {path for path in paths if "." not in path}
    # A model's sections, named relative to the model: drift.min_rows, rollout.steps.
    per_model = {p.split(".")[2] for p in paths if p.startswith("models.") and p.count(".") == 2}
    for path in DOCS:
        if path in GENERATED:
            continue
        for code in _code(path):
            for token in KEYISH.findall(code):
                if FILE.search(token) or _is_code(token):
                    continue
                if token.split(".")[0] in top | per_model:
                    yield path, token.replace("*", "x")


def test_every_configuration_key_the_docs_name_exists() -> None:
    patterns = _key_patterns()
    unknown = sorted(
        {
            f"{path.relative_to(ROOT)}: {token}"
            for path, token in _named_keys()
            if not any(p.fullmatch(t) for p in patterns for t in (token, f"models.x.{token}"))
        }
    )
    assert unknown == []


def test_every_command_the_docs_name_exists() -> None:
    known = {command.words for command in cli_ref.commands()}
    top = {words[0] for words in known}
    groups = {words[0] for words in known if len(words) > 1}
    unknown = set()
    for path in DOCS:
        for code in _code(path):
            for match in COMMAND.finditer(code):
                words = tuple(match.group(1).split())
                wrong_group = words[0] in groups and len(words) == 2 and words not in known
                if words[0] not in top or wrong_group:
                    unknown.add(f"{path.relative_to(ROOT)}: driftwatch {' '.join(words)}")
    assert sorted(unknown) == []


def test_the_checks_find_what_they_look_for() -> None:
    """The two name checks above see the names the docs are full of, so an empty list
    of unknown names means something."""
    keys = {token for _, token in _named_keys()}
    assert {"api.session_secret", "models.<name>.rollout"} <= keys
    commands = [m.group(1) for p in DOCS for c in _code(p) for m in COMMAND.finditer(c)]
    assert " db upgrade" in commands


def _route(method: str, path: str) -> tuple[str, str]:
    return method.lower(), re.sub(r"\{[^}]*\}", "{}", path.rstrip("/"))


def test_every_api_route_the_docs_name_exists() -> None:
    served = {
        _route(method, path)
        for path, item in api_ref.document()["paths"].items()
        for method in item
    }
    named = {
        (path.relative_to(ROOT), match.group(1), match.group(2))
        for path in DOCS
        if path not in GENERATED
        for code in _code(path)
        for match in ROUTE.finditer(code)
    }
    assert len(named) > 10
    unknown = sorted(f"{p}: {m} {r}" for p, m, r in named if _route(m, r) not in served)
    assert unknown == []


def test_the_readme_configuration_loads(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"## A first configuration\n+```yaml\n(.*?)```", readme, re.S)
    assert example is not None
    path = tmp_path / "config.yaml"
    path.write_text(example.group(1), encoding="utf-8")
    assert list(load_config(path, env={}).models) == ["fraud"]
