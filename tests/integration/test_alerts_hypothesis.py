"""Whatever one receiver answers, the outbox never wedges (issue 17, point 1).

A real local receiver answers each attempt with a status, a ``Retry-After`` and a
body drawn by hypothesis (digits in other scripts, 400-digit numbers, dates far in
the past and future, raw latin-1 bytes, arbitrary bodies). After each answer: the
pass completed, the healthy channel got its delivery, and the hostile delivery is
delivered, dead with a reason, or due again within the configured bounds; a
further pass after that bound always makes progress on it.
"""

from __future__ import annotations

import email.utils
import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertDeliveryRow, AlertOutbox, DeliveryRepository, DeliveryStatus
from db.session import transaction
from service.alerts import build_worker
from service.alerts.worker import OutboxWorker
from service.config.alerts import AlertsConfig
from tests.harness.receivers import Answer, Receiver, receiver
from tests.integration.test_alerts import Clock, channel_config, sessions

__all__ = ["sessions"]

MAX_BACKOFF = 60.0
MAX_RETRY_AFTER = 300.0
# Header values as the wire allows them: latin-1, without the CR/LF that end a header.
HEADER_CHARS = st.characters(codec="latin-1", exclude_characters="\r\n")


def http_dates() -> st.SearchStrategy[str]:
    moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 1, 1))
    return moments.map(lambda d: email.utils.format_datetime(d.replace(tzinfo=UTC), usegmt=True))


RETRY_AFTER = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=10**4).map(str),
    st.integers(min_value=10**12, max_value=10**400).map(str),
    http_dates(),
    st.sampled_from(["\u00b2", "\u0663", "\uff11", "1e9", "-5", "0x10", "inf", "NaN", " 7 "]),
    st.text(HEADER_CHARS, max_size=40),
)
STATUS = st.one_of(
    st.sampled_from([408, 429, 500, 503]), st.sampled_from([200, 204, 400]), st.integers(200, 599)
)
ANSWER = st.builds(
    lambda status, retry, body: Answer(
        status, (("Retry-After", retry),) if retry is not None else (), body
    ),
    STATUS,
    RETRY_AFTER,
    st.binary(max_size=9000),
)


@pytest.fixture
def pair() -> Iterator[tuple[Receiver, Receiver]]:
    with ExitStack() as stack:
        hostile = stack.enter_context(receiver("webhook", secret="hook-secret"))
        healthy = stack.enter_context(receiver("pagerduty", secret="pd-secret"))
        yield hostile, healthy


@pytest.fixture
def worker(
    sessions: sessionmaker[Session], pair: tuple[Receiver, Receiver]
) -> Iterator[tuple[OutboxWorker, Clock]]:
    hostile, healthy = pair
    cfg = AlertsConfig.model_validate(
        {
            "channels": {
                "hostile": channel_config("webhook", hostile, rate_limit=10**6),
                "ok": channel_config("pagerduty", healthy, rate_limit=10**6),
            },
            "routes": [{"channels": ["hostile", "ok"]}],
            "backoff": "10s",
            "max_backoff": MAX_BACKOFF,
            "max_retry_after": MAX_RETRY_AFTER,
            "max_attempts": 3,
        }
    )
    clock = Clock()
    w = build_worker(cfg, sessions, None, clock)
    yield w, clock
    w.close()


def hostile_row(sessions: sessionmaker[Session], model: str) -> AlertDeliveryRow:
    with transaction(sessions) as s:
        [row] = [
            d.delivery
            for d in DeliveryRepository(s).listing(model=model)
            if d.delivery.channel == "hostile"
        ]
        s.expunge(row)
        return row


_models = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=ANSWER, second=ANSWER)
@example(first=Answer(503, (("Retry-After", "\u00b2"),)), second=Answer(503))
@example(first=Answer(429, (("Retry-After", "9" * 13),)), second=Answer(200))
def test_no_answer_of_one_receiver_blocks_another_or_wedges_the_outbox(
    sessions: sessionmaker[Session],
    pair: tuple[Receiver, Receiver],
    worker: tuple[OutboxWorker, Clock],
    first: Answer,
    second: Answer,
) -> None:
    hostile, healthy = pair
    w, clock = worker
    model = f"m{next(_models)}"
    with transaction(sessions) as s:
        AlertOutbox(s).add(f"{model}-failed", "run_failed", model, "run failed", clock.now)
    before = len(healthy.accepted)
    hostile.answer_next(first)
    w.tick()
    assert len(healthy.accepted) == before + 1
    row = hostile_row(sessions, model)
    bound = clock.now + timedelta(seconds=max(MAX_BACKOFF, MAX_RETRY_AFTER))
    if row.status == DeliveryStatus.PENDING:
        assert row.attempts == 1 and row.last_error
        assert clock.now < row.next_attempt_at <= bound
        clock.advance((row.next_attempt_at - clock.now).total_seconds())
        hostile.answer_next(second)
        w.tick()
        again = hostile_row(sessions, model)
        assert again.attempts == 2, "a due delivery was not tried again"
    else:
        assert row.status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD)
        assert row.status == DeliveryStatus.DELIVERED or row.last_error
    with hostile.seen:
        hostile.script.clear()
    clock.advance(3600)
