"""Errors of leader election.

ServiceError
└── LeaderError   the elector cannot be built (a setting or the cluster config is wrong)

Failures while campaigning (the API server or database unreachable) are not
raised: they end the leadership, are logged, and the elector keeps trying.
"""

from __future__ import annotations

from service.errors import ServiceError


class LeaderError(ServiceError):
    """Names the ``leader.*`` key at fault."""
