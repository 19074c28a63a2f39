"""The overview page's sign-in, session cookie, CSRF and retrain form, through TestClient."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from db.runs import RunRepository
from db.session import transaction
from service.api.app import create_app
from service.api.ui_session import COOKIE
from tests.unit.retrain.support import Clock
from tests.unit.service.api.conftest import BOTH, READ, WRITE, Api


@pytest.fixture
def browser(sqlite_api: Api) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_api.deps), follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, token: str) -> None:
    r = client.post("/login", data={"token": token})
    assert (r.status_code, r.headers["location"]) == (303, "/")


def csrf(client: TestClient) -> str:
    page = client.get("/")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([A-Za-z0-9_-]{43})"', page.text)
    assert found is not None
    return found.group(1)


def runs(api: Api) -> list[int]:
    with transaction(api.sessions) as s:
        return [r.id for r in RunRepository(s).runs()]


def test_the_page_redirects_to_the_login_form_until_signed_in(browser: TestClient) -> None:
    r = browser.get("/")
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    form = browser.get("/login")
    assert form.status_code == 200 and 'action="/login"' in form.text
    sign_in(browser, BOTH)
    assert browser.get("/login").headers["location"] == "/"
    page = browser.get("/")
    assert page.status_code == 200 and "signed in as admin" in page.text


def test_the_session_cookie_is_signed_http_only_strict_and_not_the_token(
    browser: TestClient,
) -> None:
    r = browser.post("/login", data={"token": READ})
    set_cookie = r.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
    assert "Secure" not in set_cookie
    value = browser.cookies[COOKIE]
    assert READ not in value
    # Any change to the value makes it worthless. The signature's first character is
    # changed: its last one may carry base64 padding bits only, and then decodes the same.
    sid, stamp, signature = value.split(".")
    for forged in (
        f"{sid[:-1]}{'0' if sid[-1] != '0' else '1'}.{stamp}.{signature}",
        f"{sid}.{stamp}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}",
        "garbage",
    ):
        browser.cookies.set(COOKIE, forged)
        assert browser.get("/").status_code == 303


def test_a_session_expires(sqlite_api: Api, browser: TestClient) -> None:
    clock = sqlite_api.deps.clock
    assert isinstance(clock, Clock)
    sign_in(browser, READ)
    clock.advance(hours=7)
    assert browser.get("/").status_code == 200
    clock.advance(hours=2)
    assert browser.get("/").headers["location"] == "/login"


def test_the_cookie_is_secure_when_configured_or_on_https(sqlite_api: Api) -> None:
    secure = create_app(replace(sqlite_api.deps, cookie_secure=True))
    with TestClient(secure, follow_redirects=False) as client:
        assert "Secure" in client.post("/login", data={"token": READ}).headers["set-cookie"]
    with TestClient(
        create_app(sqlite_api.deps), base_url="https://testserver", follow_redirects=False
    ) as client:
        assert "Secure" in client.post("/login", data={"token": READ}).headers["set-cookie"]


def test_unknown_and_write_only_tokens_cannot_sign_in(browser: TestClient) -> None:
    unknown = browser.post("/login", data={"token": "not-a-token"})
    assert unknown.status_code == 401 and "The token is not known." in unknown.text
    write_only = browser.post("/login", data={"token": WRITE})
    assert write_only.status_code == 403
    assert "lacks the read scope" in write_only.text
    empty = browser.post("/login", data={"token": "  "})
    assert empty.status_code == 400 and "Enter a token." in empty.text
    assert COOKIE not in browser.cookies


def test_a_token_in_the_query_sets_the_cookie_and_is_dropped_from_the_address(
    browser: TestClient,
) -> None:
    r = browser.get("/", params={"token": READ})
    assert (r.status_code, r.headers["location"]) == (303, "/")
    assert browser.get("/").status_code == 200
    assert browser.get("/", params={"token": "wrong"}).status_code == 401


def test_logout_needs_the_session_csrf_and_clears_the_cookie(browser: TestClient) -> None:
    sign_in(browser, READ)
    assert browser.post("/logout", data={"csrf": "0" * 64}).status_code == 403
    r = browser.post("/logout", data={"csrf": csrf(browser)})
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert COOKIE not in browser.cookies
    assert browser.get("/").status_code == 303
    assert browser.post("/logout").headers["location"] == "/login"


def test_retrain_form_starts_a_run_then_reports_the_active_one(
    sqlite_api: Api, browser: TestClient
) -> None:
    sign_in(browser, BOTH)
    token = csrf(browser)
    path = "/ui/models/fraud/retrain"
    r = browser.post(path, data={"csrf": token, "reason": "looks off"})
    assert r.status_code == 303
    assert r.headers["location"] == "/?flash=started&model=fraud&run=1"
    assert "fraud: retraining run 1 started." in browser.get(r.headers["location"]).text
    again = browser.post(path, data={"csrf": token})
    assert again.headers["location"] == "/?flash=active&model=fraud&run=1"
    page = browser.get(again.headers["location"]).text
    assert "fraud: a run is already active (run 1); nothing started." in page
    assert runs(sqlite_api) == [1]
    with transaction(sqlite_api.sessions) as s:
        assert RunRepository(s).runs()[0].reason == "looks off"


def test_retrain_form_refusals_are_html_pages_and_start_nothing(
    sqlite_api: Api, browser: TestClient
) -> None:
    path = "/ui/models/fraud/retrain"
    assert browser.post(path, data={"csrf": "x"}).status_code == 401
    sign_in(browser, BOTH)
    token = csrf(browser)
    missing = browser.post(path, data={"reason": "no csrf"})
    assert missing.status_code == 403 and "does not belong to this session" in missing.text
    assert browser.post(path, data={"csrf": "é" * 64}).status_code == 403
    unknown = browser.post("/ui/models/nope/retrain", data={"csrf": token})
    assert unknown.status_code == 404 and "No model &#39;nope&#39;" in unknown.text
    assert unknown.headers["content-type"].startswith("text/html")
    long = browser.post(path, data={"csrf": token, "reason": "x" * 501})
    assert long.status_code == 400 and "longer than 500" in long.text
    not_form = browser.post(path, json={"csrf": token})
    assert not_form.status_code == 415 and "expected a form" in not_form.text
    not_utf8 = browser.post(
        path,
        content=b"csrf=%s&reason=\xff" % token.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert not_utf8.status_code == 400 and "not UTF-8" in not_utf8.text
    twice = browser.post(
        path,
        content=f"csrf={token}&csrf={token}".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert twice.status_code == 400 and "given twice" in twice.text
    assert runs(sqlite_api) == []


def test_a_read_only_session_cannot_retrain_and_sees_no_button(
    sqlite_api: Api, browser: TestClient
) -> None:
    sign_in(browser, READ)
    page = browser.get("/").text
    assert 'class="retrain"' not in page
    r = browser.post("/ui/models/fraud/retrain", data={"csrf": csrf(browser)})
    assert r.status_code == 403 and "lacks the write scope" in r.text
    assert runs(sqlite_api) == []


def test_a_model_without_labels_has_no_performance_section(browser: TestClient) -> None:
    sign_in(browser, READ)
    page = browser.get("/").text
    sections = dict(re.findall(r'data-model="(\w+)">(.*?)</section>', page, flags=re.S))
    assert sections.keys() == {"churn", "fraud"}
    assert 'data-panel="performance"' in sections["fraud"]
    assert 'data-panel="performance"' not in sections["churn"]
    for body in sections.values():
        assert 'data-panel="drift"' in body and 'data-panel="runs"' in body


def test_the_html_routes_stay_out_of_the_openapi_document(browser: TestClient) -> None:
    paths = browser.get("/openapi.json").json()["paths"]
    assert not {"/", "/login", "/logout", "/ui/models/{model}/retrain"} & paths.keys()
    assert "/v1/models/{model}/retrain" in paths


def test_only_known_outcomes_become_a_notice(browser: TestClient) -> None:
    sign_in(browser, READ)
    for query in (
        {"flash": "<b>pwned</b>", "model": "fraud"},
        {"flash": "started", "model": "nope", "run": "1"},
        {"flash": "started", "model": "fraud", "run": "<b>1</b>"},
    ):
        page = browser.get("/", params=query).text
        assert 'class="flash"' not in page and "pwned" not in page
    held = browser.get("/", params={"flash": "held", "model": "fraud"}).text
    assert "fraud: the retrain policy held the request back; nothing started." in held
