"""Every table module, imported in one place so that ``Base.metadata`` is complete.

Table modules import :mod:`db.base` and never each other's package-wide
registration; whoever reads the whole schema (the migrations' autogenerate
comparison, :func:`db.session.make_session_factory` so that every foreign key
resolves on flush) imports this module.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from db import (
    idempotency,
    layouts,
    models,
    outbox,
    registry,
    rollouts,
    runs,
    triggers,
    ui_sessions,
)
from db.base import Base

TABLE_MODULES = (
    models,
    runs,
    registry,
    triggers,
    outbox,
    idempotency,
    ui_sessions,
    rollouts,
    layouts,
)

metadata: MetaData = Base.metadata
