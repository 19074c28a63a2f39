"""The pure rules of delivery: what an answer means, how long to wait, who gets what."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from db.outbox import AlertEventRow
from service.alerts.base import Severity
from service.alerts.http import classify, retry_after
from service.alerts.webhook import signature
from service.alerts.worker import DeliverySettings, RateLimiter, Router
from service.config.alerts import AlertsConfig

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def answer(status: int, **headers: str) -> tuple[int, httpx.Headers, str]:
    return status, httpx.Headers(headers), "x"


@pytest.mark.parametrize(
    ("status", "ok", "retriable"),
    [(200, True, False), (202, True, False), (204, True, False), (429, False, True),
     (408, False, True), (500, False, True), (503, False, True), (400, False, False),
     (401, False, False), (404, False, False), (422, False, False)],
)  # fmt: skip
def test_only_429_408_and_5xx_are_retried(status: int, ok: bool, retriable: bool) -> None:
    outcome = classify(*answer(status), NOW)
    assert (outcome.ok, outcome.retriable) == (ok, retriable)


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert retry_after("120", NOW) == 120.0
    assert retry_after("Fri, 27 Nov 2026 12:05:00 GMT", NOW) == 300.0
    assert retry_after("Fri, 27 Nov 2026 11:00:00 GMT", NOW) == 0.0
    assert retry_after("soon", NOW) is None
    assert retry_after(None, NOW) is None
    assert classify(*answer(503, **{"Retry-After": "7"}), NOW).retry_after == 7.0
    # A refusal's Retry-After is moot: it is not retried.
    assert classify(*answer(400, **{"Retry-After": "7"}), NOW).retry_after is None


@pytest.mark.parametrize(
    "value",
    ["\u00b2", "\u0663", "1\u00b2", "12.5", "-1", "+5", "1e3", "0x10", "", " ", "5 s",
     "Fri, 27 Nov 2026 12:05:00 GMT\u00b2", "\uff11\uff12"],
)  # fmt: skip
def test_retry_after_takes_only_ascii_digits_or_an_http_date(value: str) -> None:
    # "²" passes str.isdigit() and made float() raise inside the send (issue 17, point 1).
    assert retry_after(value, NOW) is None


def test_a_huge_retry_after_is_bounded_before_any_arithmetic() -> None:
    assert retry_after("9" * 13, NOW) == 1e10
    assert retry_after("9" * 400, NOW) == 1e10  # float() of it would overflow
    assert retry_after("Sun, 06 Nov 1994 08:49:37 -0000", NOW) == 0.0  # naive: GMT
    assert retry_after("Sunday, 06-Nov-94 08:49:37 GMT", NOW) == 0.0  # RFC 850 form
    s = DeliverySettings(backoff=5.0, max_backoff=60.0, max_retry_after=600.0)
    assert s.delay(1, retry_after("9" * 400, NOW)) == 600.0
    assert s.delay(200, None) == 60.0


def test_a_delivery_failing_past_dead_after_gets_no_further_attempt() -> None:
    s = DeliverySettings(dead_after=3600.0)
    created = NOW
    assert s.next_attempt(created, NOW, 60.0) == NOW + timedelta(seconds=60)
    # A wait past the age limit is cut to it: one last attempt, then dead.
    assert s.next_attempt(created, NOW + timedelta(seconds=3500), 600.0) == NOW + timedelta(
        seconds=3600
    )
    assert s.next_attempt(created, NOW + timedelta(seconds=3600), 1.0) is None
    # Whatever the configured backoff, the schedule stays a date.
    assert s.next_attempt(created, NOW, 1e300) == NOW + timedelta(seconds=3600)


def test_backoff_doubles_is_capped_and_never_undercuts_retry_after() -> None:
    s = DeliverySettings(backoff=5.0, max_backoff=60.0)
    assert [s.delay(n, None) for n in range(1, 7)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert s.delay(1, 30.0) == 30.0
    assert s.delay(4, 30.0) == 40.0


def test_the_rate_limit_refills_on_the_injected_clock() -> None:
    limiter = RateLimiter({"slack": (2, 60.0)})
    assert [limiter.allow("slack", NOW) for _ in range(3)] == [True, True, False]
    assert limiter.allow("slack", NOW + timedelta(seconds=29)) is False
    assert limiter.allow("slack", NOW + timedelta(seconds=60)) is True
    assert all(limiter.allow("other", NOW) for _ in range(100))


def test_routes_match_by_model_kind_and_minimum_severity() -> None:
    cfg = AlertsConfig.model_validate(
        {
            "channels": {"slack": {"type": "log"}, "pager": {"type": "log"}},
            "routes": [
                {"channels": ["slack"]},
                {"channels": ["pager"], "models": ["fraud"], "min_severity": "error"},
                {"channels": ["pager"], "kinds": ["data_drift"], "models": ["churn"]},
            ],
            "severity": {"data_drift": "critical"},
        }
    )
    router = Router(cfg)
    assert router.channels("fraud", "data_drift", Severity.CRITICAL) == ["slack", "pager"]
    assert router.channels("fraud", "run_rejected", Severity.WARNING) == ["slack"]
    assert router.channels("churn", "data_drift", Severity.INFO) == ["slack", "pager"]
    assert router.channels("churn", "run_failed", Severity.ERROR) == ["slack"]
    event = AlertEventRow(kind="data_drift", model="fraud")
    assert router.severity(event, {}) is Severity.CRITICAL
    assert router.severity(event, {"severity": "info"}) is Severity.INFO
    assert router.severity(AlertEventRow(kind="run_failed"), {}) is Severity.ERROR


def test_the_webhook_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature(b"k", "1700000000", b"{}") == f"sha256={expected}"
