"""Drift reports through the API: pages by window time, a report's features, its HTML."""

from __future__ import annotations

from datetime import timedelta

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from db.reports import DriftReportRepository
from db.session import transaction
from drift.html import compress_html
from service.api.app import ApiDeps
from service.api.auth import Token, TokenCheck, digest
from service.api.wiring import report_html
from service.config.api import Scope
from tests.unit.retrain.support import Clock
from tests.unit.service.api.conftest import READ, served
from tests.unit.service.test_rendering import reported

__all__ = ["reported"]  # the fixture: two drift reports of model fraud


def _refuse(model: str, reason: str, key: str | None) -> object:
    raise AssertionError("no retrain in these tests")


def test_reports_are_paged_by_window_and_render_as_html(reported: sessionmaker[Session]) -> None:
    deps = ApiDeps(
        sessions=reported,
        models={"fraud": False},
        tokens=TokenCheck([Token("reader", digest(READ), frozenset({Scope.READ}))]),
        request_retrain=_refuse,  # type: ignore[arg-type]
        render_html=lambda report_id: report_html(reported, report_id),
        consumer_problem=lambda: None,
        registry=CollectorRegistry(),
        clock=Clock(),
    )
    with reported() as s:
        stored = DriftReportRepository(s).summaries("fraud")
    assert len(stored) == 2
    older, newer = sorted(stored, key=lambda r: r.window_start)
    headers = {"Authorization": f"Bearer {READ}"}
    with served(deps) as url, httpx.Client(base_url=url, headers=headers, timeout=60) as c:
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
