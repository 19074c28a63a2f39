"""Reading the YAML file, applying ``DRIFTWATCH_*`` overrides, one line per problem."""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from retrain.errors import yaml_problem
from service.config.settings import Config
from service.errors import ConfigError

ENV_PREFIX = "DRIFTWATCH_"


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment and validate; ConfigError names each bad key."""
    env = os.environ if env is None else env
    if path is None:
        path = env.get(f"{ENV_PREFIX}CONFIG")
    if not path:
        raise ConfigError(["config: no file given (use --config FILE or DRIFTWATCH_CONFIG)"])
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"config: cannot read {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"config: {path} is not UTF-8 text"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"config: {path} is not valid YAML: {yaml_problem(exc)}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"config: {path} must hold a mapping at the top level"])
    apply_env_overrides(raw, env)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Set each ``DRIFTWATCH_A__B=value`` at ``a.b`` of ``raw``.

    A variable with ``__`` whose first level is no configuration key is a typo
    (``DRIFTWATCH_DATABSE__URL``) that would otherwise leave the default in
    force: it stops loading, naming the nearest key. Variables without ``__``
    (``DRIFTWATCH_CONFIG``) are not configuration.
    """
    top = sorted(Config.model_fields)
    typos = []
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].split("__")
        if path[0].lower() not in top:
            typos.append(_misspelt(name, path, top))
            continue
        node = raw
        for i, part in enumerate(path):
            key = _match_key(node, part)
            if i == len(path) - 1:
                node[key] = _env_value(path, value)
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
    if typos:
        raise ConfigError(typos)


def _misspelt(name: str, path: list[str], keys: list[str]) -> str:
    first = path[0].lower()
    problem = f"config: {name}: {first!r} is not a configuration key; "
    nearest = difflib.get_close_matches(first, keys, n=1)
    if not nearest:
        return problem + f"expected one of {', '.join(keys)}"
    fixed = "__".join([nearest[0].upper(), *path[1:]])
    return problem + f"did you mean {ENV_PREFIX}{fixed}?"


def _env_value(path: list[str], value: str) -> Any:
    """Typed fields are coerced by validation; free-form client options get YAML typing."""
    lowered = [p.lower() for p in path]
    if lowered[:1] == ["kafka"] and lowered[1:2] in (["consumer"], ["producer"], ["security"]):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def _match_key(node: dict[str, Any], part: str) -> str:
    for key in node:
        if isinstance(key, str) and key.lower() == part.lower():
            return key
    return part.lower()


def _describe(err: Mapping[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        expected = _expected(err["loc"])
        return f"config: {key}: missing" + (f"; expected {expected}" if expected else "")
    if err["type"] == "extra_forbidden":
        return f"config: {key}: unknown key"
    return f"config: {key}: {msg}"


def _expected(loc: tuple[Any, ...]) -> str | None:
    model: Any = Config
    field = None
    for part in loc:
        if typing.get_origin(model) is dict:
            model = typing.get_args(model)[1]  # ``part`` is a user's key, e.g. a model name
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        field = fields[part]
        model = field.annotation
    return None if field is None else field.description
