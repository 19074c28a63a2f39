"""End to end: a person signed in to the overview page in headless Chromium, 1280 px wide.

The demo scenario is streamed and judged by ``driftwatch run`` (as in
``test_overview_page``). Chromium, driven over the DevTools protocol, signs in through
the login form (the page keeps only its session cookie), measures the newest window's
drift panel in the laid-out page (the per-feature table and the report link inside
the window, nothing clipped sideways), then clicks the page's "Evidently report" link:
the report route must answer that cookie, with no bearer header, with 200 and
Evidently's HTML.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection

from tests.harness.kafka import TestKafka
from tests.harness.scenario import ServiceProcess, create_topics
from tests.integration.test_overview_page import (
    TOKEN,
    _config,
    _free_port,
    _prepare,
    _wait_for_reports,
    chromium,  # noqa: F401 (the fixture)
)
from tests.integration.test_overview_rollout import WIDTH, _Cdp, _devtools

pytestmark = [pytest.mark.kafka]

# The drift panel of each model: its size, what overflows it, and where the report
# link and the rows of the per-feature table end, against the viewport.
MEASURE = """JSON.stringify({
  viewport: window.innerWidth,
  document: document.documentElement.scrollWidth,
  models: [...document.querySelectorAll('[data-panel="drift"]')].map(panel => ({
    clipped: [panel, ...panel.querySelectorAll('*')]
      .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).display !== 'inline')
      .map(e => `${e.tagName} ${e.getAttribute('class') || ''} ${e.scrollWidth}/${e.clientWidth}`),
    link: panel.querySelector('a[href$="/html"]').getBoundingClientRect().right,
    features: [...panel.querySelectorAll('table.features tr[data-feature]')].map(
      row => [row.dataset.feature, row.getBoundingClientRect().right, row.cells.length]),
  })),
})"""


def _events_until(ws: ClientConnection, method: str, seen: list[dict[str, Any]]) -> None:
    """Read DevTools messages into ``seen`` until one of ``method`` arrives."""
    while True:
        message = json.loads(ws.recv(timeout=300))
        seen.append(message)
        if message.get("method") == method:
            return


def _evaluate(cdp: _Cdp, expression: str) -> Any:
    return cdp.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get(
        "value"
    )


def _sign_in_measure_and_follow(binary: str, profile: Path, base: str) -> dict[str, Any]:
    with _devtools(binary, profile) as ws:
        cdp = _Cdp(ws)
        cdp.until_loaded(f"{base}/login")
        cdp.call("Network.enable")
        _evaluate(
            cdp,
            f"document.getElementById('token').value = {json.dumps(TOKEN)};"
            "document.querySelector('form[action=\"/login\"]').submit()",
        )
        _events_until(ws, "Page.loadEventFired", [])
        out: dict[str, Any] = {"page": _evaluate(cdp, "location.pathname")}
        out["cookies"] = [c["name"] for c in cdp.call("Network.getCookies")["cookies"]]
        out["measured"] = json.loads(_evaluate(cdp, MEASURE))
        href = _evaluate(
            cdp, 'document.querySelector(\'[data-model="fraud"] a[href$="/html"]\').href'
        )
        seen: list[dict[str, Any]] = []
        _evaluate(cdp, 'document.querySelector(\'[data-model="fraud"] a[href$="/html"]\').click()')
        _events_until(ws, "Page.loadEventFired", seen)
        documents = [
            m["params"]["response"]
            for m in seen
            if m.get("method") == "Network.responseReceived" and m["params"]["type"] == "Document"
        ]
        requests = [
            m["params"]["request"]["headers"]
            for m in seen
            if m.get("method") == "Network.requestWillBeSent" and m["params"]["type"] == "Document"
        ]
        out.update(href=href, documents=documents, requests=requests)
        out["url"] = _evaluate(cdp, "location.href")
        out["title"] = _evaluate(cdp, "document.title")
        # Evidently's own script draws the report (see tests/unit/drift/test_html.py).
        out["evidently"] = _evaluate(cdp, "typeof window.drawDashboard")
        out["text"] = _evaluate(cdp, "document.body.innerText")
        return out


def test_a_signed_in_browser_reads_the_drift_table_and_opens_the_evidently_report(
    kafka: TestKafka,
    sqlite_url: str,
    tmp_path: Path,
    chromium: str,  # noqa: F811
) -> None:
    topic = f"overview-people-{os.getpid()}"
    create_topics(kafka, topic)
    port = _free_port()
    config = _config(kafka, sqlite_url, topic, port, tmp_path)
    _prepare(kafka, config, tmp_path)
    svc = ServiceProcess(config, tmp_path / "service.log")
    svc.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_reports(sqlite_url, svc, timeout=120)
        seen = _sign_in_measure_and_follow(chromium, tmp_path / "profile", base)
    finally:
        assert svc.terminate() == 0, svc.log_text()
    assert seen["page"] == "/" and "driftwatch_session" in seen["cookies"], seen["page"]
    measured = seen["measured"]
    assert measured["viewport"] == WIDTH and measured["document"] <= WIDTH, measured
    assert len(measured["models"]) == 2
    for model in measured["models"]:
        assert model["clipped"] == [], measured
        assert 0 < model["link"] <= WIDTH, measured
        # Every feature (fraud has six, plain five) with test, score, p-value, threshold
        # and verdict.
        assert len(model["features"]) in (5, 6), measured
        for _name, right, cells in model["features"]:
            assert right <= WIDTH and cells == 6, measured
    # The click was a plain navigation: the cookie went along, no Authorization header.
    assert seen["url"] == seen["href"] and seen["href"].endswith("/html"), seen["url"]
    assert [d["url"] for d in seen["documents"]] == [seen["href"]], seen["documents"]
    (report,) = seen["documents"]
    assert report["status"] == 200 and report["mimeType"] == "text/html", report
    assert all("Authorization" not in h for h in seen["requests"])
    assert seen["title"].startswith("driftwatch report ") and "fraud" in seen["title"]
    assert seen["evidently"] == "function"
    assert "amount" in seen["text"], seen["text"][:500]
