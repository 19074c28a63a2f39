"""Drift reports through the API: pages by window time, a report's features, its HTML."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextlib import closing
from datetime import timedelta
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from db.models import DriftReportRow
from db.reports import DriftReportRepository
from db.session import transaction
from drift.html import compress_html
from service.api.auth import Token, TokenCheck, digest
from service.api.deps import ApiDeps
from service.api.ui_session import COOKIE
from service.config.api import Scope
from service.monitoring.rendering import OnDemandHtml
from tests.unit.retrain.support import Clock
from tests.unit.service.api.conftest import READ, served
from tests.unit.service.test_rendering import reported

__all__ = ["reported"]  # the fixture: two drift reports of model fraud


class _Refuse:
    def request(self, model: str, reason: str, key: str | None = None) -> object:
        raise AssertionError("no retrain in these tests")


def _deps(sessions: sessionmaker[Session], render_html: Callable[[int], str]) -> ApiDeps:
    return ApiDeps(
        sessions=sessions,
        models={"fraud": False},
        tokens=TokenCheck([Token("reader", digest(READ), frozenset({Scope.READ}))]),
        retrain_policy=_Refuse(),  # type: ignore[arg-type]
        render_html=render_html,
        consumer_problem=lambda: None,
        registry=CollectorRegistry(),
        clock=Clock(),
        session_secret="s" * 32,
    )


def test_reports_are_paged_by_window_and_render_as_html(reported: sessionmaker[Session]) -> None:
    renderer = OnDemandHtml(reported)
    deps = _deps(reported, renderer.html)
    with reported() as s:
        stored = DriftReportRepository(s).summaries("fraud")
    assert len(stored) == 2
    older, newer = sorted(stored, key=lambda r: r.window_start)
    headers = {"Authorization": f"Bearer {READ}"}
    with (
        served(deps) as url,
        httpx.Client(base_url=url, headers=headers, timeout=60) as c,
        closing(renderer),
    ):
        page = c.get("/v1/models/fraud/drift").json()
        assert [r["id"] for r in page["items"]] == [newer.id, older.id]
        page = c.get("/v1/models/fraud/drift", params={"limit": 1}).json()
        assert ([r["id"] for r in page["items"]], page["next_offset"]) == ([newer.id], 1)
        window = {"from": older.window_start.isoformat(), "to": newer.window_start.isoformat()}
        page = c.get("/v1/models/fraud/drift", params=window).json()
        assert [r["id"] for r in page["items"]] == [older.id]
        late = {"from": (newer.window_start + timedelta(seconds=1)).isoformat()}
        assert c.get("/v1/models/fraud/drift", params=late).json()["items"] == []
        body = c.get(f"/v1/reports/{older.id}").json()
        assert body["summary"]["id"] == older.id and body["html_available"] is True
        assert {f["feature"] for f in body["features"]} >= {"amount"}
        html = c.get(f"/v1/reports/{older.id}/html")
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "<html" in html.text.lower() and "amount" in html.text
        assert c.get("/v1/models/fraud").json()["latest_performance"] is None
        # The page the service keeps for the newest report is served as stored.
        with transaction(reported) as s:
            page_bytes = compress_html("<html>kept by the service</html>")
            DriftReportRepository(s).store_html("fraud", newer.id, page_bytes, Clock()())
        assert c.get(f"/v1/reports/{newer.id}/html").text == "<html>kept by the service</html>"


class HeldPool(Executor):
    """A rendering pool whose renders finish only when the test opens ``gate``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        done: Future[Any] = Future()

        def finish() -> None:
            self.gate.wait(30)
            done.set_result(compress_html("<html>rendered late</html>"))

        self.started.set()
        threading.Thread(target=finish, daemon=True).start()
        return done


def test_a_render_beyond_the_renderer_capacity_gets_503_not_a_queue(
    reported: sessionmaker[Session],
) -> None:
    pool = HeldPool()
    renderer = OnDemandHtml(reported, capacity=1, pool_factory=lambda: pool)
    with reported() as s:
        older = min(DriftReportRepository(s).summaries("fraud"), key=lambda r: r.window_start)
    headers = {"Authorization": f"Bearer {READ}"}
    answers: list[httpx.Response] = []
    with (
        served(_deps(reported, renderer.html)) as url,
        httpx.Client(base_url=url, headers=headers, timeout=60) as c,
    ):
        first = threading.Thread(
            target=lambda: answers.append(c.get(f"/v1/reports/{older.id}/html"))
        )
        first.start()
        assert pool.started.wait(30)
        busy = c.get(f"/v1/reports/{older.id}/html")
        assert busy.status_code == 503
        assert "retry" in busy.json()["message"]
        pool.gate.set()
        first.join(30)
        assert [a.status_code for a in answers] == [200]
        assert answers[0].text == "<html>rendered late</html>"
        # The slot is free again once the render is done.
        assert c.get(f"/v1/reports/{older.id}/html").status_code == 200


def test_a_report_whose_stored_sample_cannot_be_read_gets_409_naming_why(
    reported: sessionmaker[Session],
) -> None:
    renderer = OnDemandHtml(reported)
    with reported() as s:
        older = min(DriftReportRepository(s).summaries("fraud"), key=lambda r: r.window_start)
    with transaction(reported) as s:
        s.execute(
            update(DriftReportRow)
            .where(DriftReportRow.id == older.id)
            .values(current_sample=b"damaged")
        )
    headers = {"Authorization": f"Bearer {READ}"}
    with (
        served(_deps(reported, renderer.html)) as url,
        httpx.Client(base_url=url, headers=headers, timeout=60) as c,
        closing(renderer),
    ):
        answer = c.get(f"/v1/reports/{older.id}/html")
    assert answer.status_code == 409
    message = answer.json()["message"]
    assert f"driftwatch report {older.id}" in message
    assert "cannot be rendered: SketchCorrupt" in message


def test_the_report_page_opens_with_the_overview_session_cookie(
    reported: sessionmaker[Session],
) -> None:
    """The overview page links to the rendered report: a signed-in browser follows that link
    with its session cookie and no bearer header."""
    with reported() as s:
        newer = max(DriftReportRepository(s).summaries("fraud"), key=lambda r: r.window_start)
    with transaction(reported) as s:
        page_bytes = compress_html("<html>kept by the service</html>")
        DriftReportRepository(s).store_html("fraud", newer.id, page_bytes, Clock()())
    renderer = OnDemandHtml(reported)
    link = f"/v1/reports/{newer.id}/html"
    with (
        served(_deps(reported, renderer.html)) as url,
        httpx.Client(base_url=url, timeout=60) as browser,
        closing(renderer),
    ):
        refused = browser.get(link)
        assert refused.status_code == 401
        assert "session cookie" in refused.json()["message"]
        assert browser.post("/login", data={"token": READ}).status_code == 303
        page = browser.get("/").text
        # The page links the newest window's report and lists its per-feature verdicts.
        assert f'href="{link}"' in page
        detail = browser.get(f"/v1/reports/{newer.id}", headers={"Authorization": f"Bearer {READ}"})
        for f in detail.json()["features"]:
            row = re.search(rf'<tr data-feature="{f["feature"]}">(.*?)</tr>', page)
            assert row is not None, f["feature"]
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
            assert cells[1] == (f["method"] or "")
            assert cells[4] == (f"{f['threshold']:.3g}" if f["threshold"] is not None else "")
            verdict = {True: "drift", False: "none", None: "n/a"}[f["drifted"]]
            assert f">{verdict}</span>" in cells[5]
        opened = browser.get(link)
        assert opened.status_code == 200, opened.text
        assert opened.text == "<html>kept by the service</html>"
        # The cookie opens the rendered page only; the JSON API still wants the token.
        assert browser.get(f"/v1/reports/{newer.id}").status_code == 401
        # A bearer header, when given, is what is judged: a wrong one is not saved by the cookie.
        wrong = browser.get(link, headers={"Authorization": "Bearer not-a-token"})
        assert wrong.status_code == 401
        cookie = browser.cookies[COOKIE]
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/").text)
        assert csrf is not None
        browser.post("/logout", data={"csrf": csrf.group(1)})
        browser.cookies.set(COOKIE, cookie)  # a copy kept after signing out
        gone = browser.get(link)
        assert gone.status_code == 401 and "signed out" in gone.json()["message"]
