"""What the ``driftwatch`` commands share: the config and a checked database."""

from __future__ import annotations

import argparse

from sqlalchemy.orm import Session, sessionmaker

from service.config import Config, load_config
from service.errors import ConfigError


def load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def sessions_for(cfg: Config) -> sessionmaker[Session]:
    from db.migrate import require_current
    from db.session import make_engine, make_session_factory

    engine = make_engine(cfg.database.url)
    require_current(engine, "driftwatch db upgrade --config FILE")
    return make_session_factory(engine)


def require_model(cfg: Config, name: str) -> None:
    if name not in cfg.models:
        raise ConfigError([f"--model: {name!r} is not in the config (have {list(cfg.models)})"])
