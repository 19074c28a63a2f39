"""What the ``driftwatch`` commands share: the config and a checked database."""

from __future__ import annotations

import argparse
import os

from sqlalchemy.orm import Session, sessionmaker

from service.config import Config, load_config
from service.errors import ConfigError


def load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def config_path(args: argparse.Namespace) -> str | None:
    """The config file a command read: ``--config``, else ``$DRIFTWATCH_CONFIG``."""
    path: str | None = args.config or os.environ.get("DRIFTWATCH_CONFIG")
    return path


def upgrade_hint(args: argparse.Namespace) -> str:
    return f"driftwatch db upgrade --config {config_path(args) or 'FILE'}"


def sessions_for(cfg: Config, args: argparse.Namespace) -> sessionmaker[Session]:
    """Sessions on the configured database, once its schema is known to be this code's."""
    from db.migrate import require_current
    from db.session import make_engine, make_session_factory

    engine = make_engine(cfg.database.url)
    require_current(engine, upgrade_hint(args))
    return make_session_factory(engine)


def require_model(cfg: Config, name: str) -> None:
    if name not in cfg.models:
        raise ConfigError([f"--model: {name!r} is not in the config (have {list(cfg.models)})"])
