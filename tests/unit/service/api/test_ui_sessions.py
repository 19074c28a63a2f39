"""Sessions of the overview page outlive the process that opened them and end at
sign-out everywhere; failed sign-ins and unknown tokens are throttled per address."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from service.api.throttle import Throttle, TooManyAttempts
from service.api.ui_session import COOKIE
from tests.unit.retrain.support import Clock
from tests.unit.service.api.conftest import BOTH, READ, Api, served


def sign_in(url: str) -> str:
    r = httpx.post(f"{url}/login", data={"token": READ}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.cookies[COOKIE]


def page(url: str, cookie: str) -> httpx.Response:
    return httpx.get(f"{url}/", cookies={COOKIE: cookie}, follow_redirects=False)


def test_a_cookie_from_one_server_is_accepted_by_another_with_the_same_secret(
    sqlite_api: Api,
) -> None:
    # Each server builds its own sessions from the dependencies, as a second replica (or the
    # same one after a restart) does: only the configured secret and the database are shared.
    cookie = sign_in(sqlite_api.url)
    with served(sqlite_api.deps) as second:
        assert page(second, cookie).status_code == 200
    other = replace(sqlite_api.deps, session_secret="another-secret-" + "x" * 32)
    with served(other) as stranger:
        assert page(stranger, cookie).headers["location"] == "/login"


def test_after_logout_the_cookie_is_refused_by_every_server(sqlite_api: Api) -> None:
    cookie = sign_in(sqlite_api.url)
    kept = sign_in(sqlite_api.url)  # another browser's session of the same token
    csrf_page = page(sqlite_api.url, cookie).text
    marker = 'name="csrf" value="'
    csrf = csrf_page.split(marker, 1)[1].split('"', 1)[0]
    out = httpx.post(
        f"{sqlite_api.url}/logout",
        data={"csrf": csrf},
        cookies={COOKIE: cookie},
        follow_redirects=False,
    )
    assert out.headers["location"] == "/login"
    # The browser dropped the cookie, but a copy of it is worth nothing now.
    assert page(sqlite_api.url, cookie).headers["location"] == "/login"
    with served(sqlite_api.deps) as second:
        assert page(second, cookie).headers["location"] == "/login"
        assert page(second, kept).status_code == 200


def test_failed_sign_ins_are_limited_per_address_with_retry_after(sqlite_api: Api) -> None:
    clock = sqlite_api.deps.clock
    assert isinstance(clock, Clock)
    throttle = sqlite_api.deps.tokens.throttle
    login = f"{sqlite_api.url}/login"
    for _ in range(throttle.attempts):
        assert httpx.post(login, data={"token": "guess"}).status_code == 401
    refused = httpx.post(login, data={"token": BOTH}, follow_redirects=False)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(int(throttle.period))
    assert "Too many failed sign-ins" in refused.text
    # Bearer tokens from the same address are refused too, before they are looked at.
    api = httpx.get(f"{sqlite_api.url}/v1/models", headers={"Authorization": f"Bearer {BOTH}"})
    assert api.status_code == 429 and "retry after" in api.json()["message"]
    clock.advance(seconds=throttle.period)
    assert httpx.post(login, data={"token": BOTH}, follow_redirects=False).status_code == 303


def test_unknown_bearer_tokens_are_limited_and_known_ones_never_count(sqlite_api: Api) -> None:
    throttle = sqlite_api.deps.tokens.throttle
    models = f"{sqlite_api.url}/v1/models"
    for _ in range(3 * throttle.attempts):
        assert httpx.get(models, headers={"Authorization": f"Bearer {READ}"}).status_code == 200
    for _ in range(throttle.attempts):
        bad = httpx.get(models, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
    limited = httpx.get(models, headers={"Authorization": "Bearer nope"})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= throttle.period


def test_the_throttle_tracks_a_bounded_number_of_addresses() -> None:
    now = [0.0]
    throttle = Throttle(attempts=2, period=60.0, clients=100, clock=lambda: now[0])
    for i in range(100_000):
        throttle.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert throttle.tracked() == 100
    throttle.failed("192.0.2.1")
    throttle.failed("192.0.2.1")
    with pytest.raises(TooManyAttempts) as refused:
        throttle.check("192.0.2.1")
    assert refused.value.retry_after == 60
    now[0] = 59.5
    throttle.check("203.0.113.7")  # another address is not affected
    now[0] = 60.0
    throttle.check("192.0.2.1")  # the window is over
