"""What the wheel ships: the service's packages, not its development tooling."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[3]


def test_the_wheel_leaves_the_development_tooling_out() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    find = config["setuptools"]["packages"]["find"]
    shipped = set(find_packages(str(ROOT), include=find["include"], exclude=find["exclude"]))
    assert {"service", "service.cli", "service.wiring", "service.monitoring"} <= shipped
    assert not {p for p in shipped if p == "service.dev" or p.startswith("service.dev.")}
    # Otherwise setuptools ships every file under service/ as package data, service/dev too.
    assert config["setuptools"]["include-package-data"] is False
