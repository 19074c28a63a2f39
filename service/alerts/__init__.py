"""On-call alert channels and the outbox worker that feeds them.

:func:`make_channel` is the factory keyed by ``alerts.channels.*.type``;
:func:`build_worker` wires the configured channels, routes and retry policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from service.alerts.alertmanager import AlertmanagerChannel
from service.alerts.base import Channel
from service.alerts.errors import ChannelConfigError
from service.alerts.http import make_client
from service.alerts.log import LogChannel
from service.alerts.masking import url_secrets
from service.alerts.opsgenie import API_URL, OpsgenieChannel
from service.alerts.pagerduty import EVENTS_URL, PagerDutyChannel
from service.alerts.slack import SlackChannel
from service.alerts.webhook import WebhookChannel
from service.alerts.worker import DeliveryObserver, DeliverySettings, Limits, OutboxWorker, Router
from service.config.alerts import AlertsConfig, ChannelConfig

__all__ = ["OutboxWorker", "build_worker", "make_channel"]

_HTTP_TYPES = frozenset({"slack", "pagerduty", "opsgenie", "alertmanager", "webhook"})


def make_channel(name: str, cfg: ChannelConfig) -> Channel:
    """The channel ``alerts.channels.<name>`` describes; an unknown type fails loudly."""
    where = f"alerts.channels.{name}"
    try:
        secret = cfg.resolve_secret(where)
    except ValueError as exc:
        raise ChannelConfigError(str(exc)) from exc
    if cfg.type == "log":
        return LogChannel(name)
    if cfg.type not in _HTTP_TYPES:
        raise ChannelConfigError(
            f"{where}.type: unknown channel type {cfg.type!r} "
            "(expected slack, pagerduty, opsgenie, alertmanager, webhook or log)"
        )
    client = make_client(cfg.timeout)
    if cfg.type == "slack":
        return SlackChannel(name, _required(cfg.url, where), client)
    if cfg.type == "pagerduty":
        return PagerDutyChannel(name, _required(secret, where), client, cfg.url or EVENTS_URL)
    if cfg.type == "opsgenie":
        return OpsgenieChannel(name, _required(secret, where), client, cfg.url or API_URL)
    if cfg.type == "alertmanager":
        # Held twice the re-send interval, so one lost re-send does not resolve it.
        hold = timedelta(seconds=2 * cfg.resend_interval)
        return AlertmanagerChannel(name, _required(cfg.url, where), client, hold)
    key = _required(secret, where).encode()
    return WebhookChannel(name, _required(cfg.url, where), key, client)


def _required(value: str | None, where: str) -> str:
    if not value:
        raise ChannelConfigError(f"{where}: url or secret missing")
    return value


def build_worker(
    cfg: AlertsConfig,
    sessions: sessionmaker[Session],
    observer: DeliveryObserver | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    is_leader: Callable[[], bool] = lambda: True,
) -> OutboxWorker:
    """``is_leader`` is asked before every send, not once per tick: leadership can pass to
    another replica in the middle of one."""
    channels = {name: make_channel(name, c) for name, c in cfg.channels.items()}
    resend = {
        name: c.resend_interval for name, c in cfg.channels.items() if c.type == "alertmanager"
    }
    rates = {name: (c.rate_limit, c.rate_period) for name, c in cfg.channels.items()}
    limits = {name: Limits(c.deadline, c.concurrency) for name, c in cfg.channels.items()}
    settings = DeliverySettings(
        max_attempts=cfg.max_attempts,
        backoff=cfg.backoff,
        max_backoff=cfg.max_backoff,
        max_retry_after=cfg.max_retry_after,
        dead_after=cfg.dead_after,
        batch=cfg.batch,
        resend=resend,
        rates=rates,
        limits=limits,
    )
    return OutboxWorker(
        sessions, channels, Router(cfg), settings, clock, observer, is_leader, secrets(cfg)
    )


def secrets(cfg: AlertsConfig) -> list[str]:
    """Every channel's credentials (URL parts, keys), removed from any error text."""
    found: list[str] = []
    for name, channel in cfg.channels.items():
        if channel.url:
            found += url_secrets(channel.url)
        with contextlib.suppress(ValueError):  # already reported by make_channel
            found.append(channel.resolve_secret(f"alerts.channels.{name}") or "")
    return [s for s in found if s]
