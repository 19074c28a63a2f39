"""constraints.txt pins exactly what pyproject.toml asks for, and every install uses it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert match is not None, f"constraints.txt: not an exact pin: {line!r}"
        found[canonicalize_name(match.group(1))] = Version(match.group(2))
    return found


def test_every_dependency_is_pinned_within_its_floor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pinned = pins()
    stale = []
    for text in wanted:
        req = Requirement(text)
        version = pinned.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            stale.append(f"{text}: pinned {version}")
    assert not stale, f"constraints.txt is stale; run `make lock`: {stale}"


def test_the_image_and_make_install_use_the_constraints() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^COPY .*\bconstraints\.txt\b", dockerfile, re.M)
    assert re.search(r"^RUN pip install .*-c constraints\.txt \.", dockerfile, re.M)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pip install .*-c constraints\.txt -e '\.\[test\]'", makefile)


def test_the_local_s3_server_is_pinned_and_installed_from_its_pins() -> None:
    """moto's server lives in a virtualenv of its own (botocore's python-dateutil pin
    excludes the kubernetes client's): its file pins every package exactly too."""
    lines = (ROOT / "tests" / "harness" / "s3-server.txt").read_text(encoding="utf-8")
    names = []
    for line in lines.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert match is not None, f"s3-server.txt: not an exact pin: {line!r}"
        names.append(canonicalize_name(match.group(1)))
    assert "moto" in names and "werkzeug" in names
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pip install .*--no-deps -r tests/harness/s3-server\.txt", makefile)
    assert re.search(r"^test: .*\bs3-server\b", makefile, re.M)
