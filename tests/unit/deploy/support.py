"""What the deployment tests share: the repository's deploy files, rendering with a real
kustomize, the configuration schema's keys and the service's metric names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Histogram
from pydantic import BaseModel

from service.config.loading import ENV_PREFIX
from service.config.settings import Config
from service.metrics import HTTP, SCHEDULER, SERVICE

ROOT = Path(__file__).resolve().parents[3]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = KUBERNETES / "overlays"
ROUTERS = ("gateway-api", "istio", "kserve", "replicas")
# Overlays that move storage, not traffic: the base's rollout settings stay.
STORES = ("s3",)
# kubernetes-validate's schemas; kubectl on this machine kind is 1.32.
KUBERNETES_VERSION = "1.32"


def kubectl() -> str:
    """kubectl's path; missing, the test fails under CI=true or `make test` and skips else."""
    found = shutil.which("kubectl")
    if found is None:
        required = os.environ.get("CI") == "true" or (
            os.environ.get("DRIFTWATCH_REQUIRE_SERVICES") == "1"
        )
        if required:
            pytest.fail("kubectl (kustomize) is not installed (required under CI=true / make test)")
        pytest.skip("kubectl (kustomize) is not installed")
    return found


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize DIRECTORY` renders."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory}: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# -- the configuration schema


def _unwrap(annotation: Any) -> Any:
    """``X`` of ``X | None`` and of ``Annotated[X, ...]``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def config_key(name: str, raw: Mapping[str, Any]) -> str | None:
    """Why the variable ``name`` sets no key of the configuration schema, or None when it
    does. A mapping's user key (a model's name) must be one the file ``raw`` defines."""
    parts = name.removeprefix(ENV_PREFIX).lower().split("__")
    node: Any = Config
    given: Any = raw
    for i, part in enumerate(parts):
        node = _unwrap(node)
        where = ".".join(parts[: i + 1])
        if typing.get_origin(node) is dict:
            if not isinstance(given, Mapping) or part not in given:
                return f"{name}: {where} is not in the configuration file"
            node, given = typing.get_args(node)[1], given[part]
            continue
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            return f"{name}: {'.'.join(parts[:i])} is not a section"
        if part not in node.model_fields:
            return f"{name}: {where} is not a configuration key"
        node = node.model_fields[part].annotation
        given = given.get(part, {}) if isinstance(given, Mapping) else {}
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return f"{name}: {'.'.join(parts)} is a section, not a key"
    return None


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}`` and ``${VAR:-default}`` substitution."""

    def one(match: re.Match[str]) -> str:
        return env.get(match.group(1)) or (match.group(3) or "")

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", one, value)


# -- the service's metrics


def exported() -> dict[str, tuple[str, ...]]:
    """Every series name the service exports, with its label names as Prometheus stores
    them: a label that clashes with a target label (the scheduler metrics' ``job``) is
    kept as ``exported_job``, since neither the ServiceMonitor nor the compose scrape
    configuration honours the exporter's labels."""
    names: dict[str, tuple[str, ...]] = {}
    for spec in (*SERVICE, *HTTP, *SCHEDULER):
        labels = tuple(f"exported_{x}" if x in _CLASHING else x for x in spec.labels)
        if issubclass(spec.kind, Histogram):
            names[spec.name + "_bucket"] = (*labels, "le")
            names[spec.name + "_sum"] = names[spec.name + "_count"] = labels
        else:
            names[spec.name] = labels
    return names


_CLASHING = frozenset({"job", "instance"})


# Labels Prometheus adds to every series it scrapes (the Prometheus Operator's included).
TARGET_LABELS = frozenset(
    {"instance", "job", "namespace", "pod", "service", "endpoint", "container"}
)
_METRIC = re.compile(r"\b(driftwatch_[a-z0-9_]+)\b(\{[^}]*\})?")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")


def promql_problems(expr: str) -> list[str]:
    """The metrics and label names ``expr`` uses that the service does not export."""
    names = exported()
    problems: list[str] = []
    used: set[str] = set()
    for metric, selector in _METRIC.findall(expr):
        if metric not in names:
            problems.append(f"{metric}: no such metric in service/metrics.py")
            continue
        used.update(names[metric])
        for label in _MATCHER.findall(selector):
            if f"exported_{label}" in names[metric]:
                problems.append(f"{metric}: no label {label} of its own (it is exported_{label})")
            elif label not in names[metric] and label not in TARGET_LABELS:
                problems.append(f"{metric}: no label {label}")
    if not _METRIC.search(expr):
        problems.append(f"{expr}: names no driftwatch metric")
    for group in _GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label not in used and label not in TARGET_LABELS:
                problems.append(f"{expr}: groups by {label}, a label none of its metrics has")
    return problems


def walk_dashboard(node: Any) -> Iterator[str]:
    """Every PromQL expression of a Grafana dashboard, rows' panels included."""
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        for value in node.values():
            yield from walk_dashboard(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_dashboard(value)
