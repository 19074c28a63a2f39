"""The configuration reference: every key of :class:`service.config.Config`, its type,
default and description.

A key's description is its ``Field(description=...)`` in :mod:`service.config`; keys
that have none there are described in ``config_descriptions.yaml`` beside this module.
A key described in neither place is an error (:func:`undocumented`), and so is a
description there of a key the schema does not have (:func:`stale_descriptions`).
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from service.config import Config
from service.durations import parse_duration

DESCRIPTIONS = Path(__file__).with_name("config_descriptions.yaml")
_SECONDS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key: its dotted path (``<name>`` for a mapping's keys, ``[]``
    for a list's items), the section it is in, and how the schema declares it."""

    path: str
    section: str
    type: str
    default: str
    description: str | None


def descriptions() -> dict[str, str]:
    loaded = yaml.safe_load(DESCRIPTIONS.read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in loaded.items()}


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[Key]:
    """Every key of ``model``, depth first in declaration order."""
    extra = descriptions()
    section = prefix.rstrip(".") or "(top level)"
    for name, field in model.model_fields.items():
        path = prefix + (field.alias or name)
        yield Key(
            path, section, type_name(field), default(field), field.description or extra.get(path)
        )
        for sub, joint in _sections(field.annotation):
            yield from config_keys(sub, path + joint)


def undocumented() -> list[str]:
    return [key.path for key in config_keys() if not key.description]


def stale_descriptions() -> list[str]:
    known = {key.path for key in config_keys()}
    return sorted(set(descriptions()) - known)


def _sections(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    """The sections under a field: a model itself (``.``), a mapping's values
    (``.<name>.``), a list's items (``[].``)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, "."
    elif origin is dict:
        for sub, _ in _sections(args[1]):
            yield sub, ".<name>."
    elif origin is list:
        for sub, _ in _sections(args[0]):
            yield sub, "[]."
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from _sections(arg)


def type_name(field: FieldInfo) -> str:
    if any(getattr(m, "func", None) is parse_duration for m in field.metadata):
        return "duration"
    return _name(field.annotation)


def _name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in args)
    if origin is list:
        return f"list of {_name(args[0])}"
    if origin is dict:
        return f"mapping of {_name(args[0])} to {_name(args[1])}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " or ".join(f"`{member.value}`" for member in annotation)
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "see its keys"
    if isinstance(value, float) and type_name(field) == "duration":
        return f"`{duration(value)}`"
    return f"`{_yaml(to_jsonable_python(value))}`"


def duration(seconds: float) -> str:
    """``seconds`` as the configuration would write it: ``90m`` rather than ``5400``."""
    for unit, size in _SECONDS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s" if seconds >= 1 or seconds == 0 else f"{seconds * 1000:g}ms"


def _yaml(value: object) -> str:
    flow = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    text: str = flow.strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _cell(text: str) -> str:
    # A pipe inside a backticked default or type would still end the table cell.
    return text.replace("|", "\\|").replace("\\\\|", "\\|")


def render() -> str:
    lines = [
        "# Configuration keys",
        "",
        "<!-- Generated by `python -m docgen` from the pydantic models of service/config/;"
        " do not edit: tests/unit/test_docs_site.py fails when this page is stale. -->",
        "",
        "Every key of the configuration file, generated from the schema that validates it.",
        "Durations are written as `250ms`, `30s`, `5m`, `1h` or `1d` (a bare number is",
        "seconds). `<name>` stands for a key you choose (a model, a channel, a gate's",
        "metric); `[]` for the items of a list. Any key can also be set by an environment",
        "variable: `DRIFTWATCH_` and the key path with `__` between levels (see",
        "[Configuration](../configuration.md)).",
    ]
    sections: dict[str, list[Key]] = {}
    for key in config_keys():
        sections.setdefault(key.section, []).append(key)
    for section, rows in sections.items():
        lines += ["", f"## `{section}`", "", "| key | type | default | description |"]
        lines.append("| --- | --- | --- | --- |")
        for key in rows:
            cells = [f"`{key.path}`", key.type, key.default, key.description or ""]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
