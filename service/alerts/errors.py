"""Errors of the alert channels.

::

    AlertError
    └── ChannelConfigError   a channel or route that cannot be built from the config

Delivery failures are not raised: a channel returns a :class:`~service.alerts.base.Outcome`
that says whether the attempt may be retried, so the worker never guesses from an exception.
"""

from __future__ import annotations


class AlertError(Exception):
    """Base of every alerting error."""


class ChannelConfigError(AlertError):
    """A channel named in ``alerts.channels`` that cannot be built."""
