"""End to end: the overview page's rollout panel in headless Chromium, 1280 px wide.

A rollout of ``fraud`` is driven to its end by the service's own rollout driver
(in-memory router, scripted analysis: step 1 passes, step 2's prediction
divergence fails with a reason full of markup, so it rolls back); ``plain`` never
had one. ``driftwatch run`` then serves the page. Chromium dumps its DOM (what is
shown, and that the markup stayed text), and, driven over the DevTools protocol at a
1280 px viewport, measures the laid-out page: nothing wider than the window, and
no rollout panel that scrolls or clips its content sideways.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image
from websockets.sync.client import ClientConnection, connect

from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from drift.canary import Check, Outcome
from retrain.rollout.fake import FakeRouter
from retrain.rollout.span import AnalysisSettings, Span
from service.config import load_config
from service.wiring.rollouts import build_rollouts
from tests.harness.k8s.cluster import until
from tests.harness.kafka import TestKafka
from tests.harness.scenario import ServiceProcess, create_topics, wide_model
from tests.integration.test_overview_page import (
    TOKEN,
    _chromium,
    _Dom,
    _free_port,
    chromium,  # noqa: F401 (the fixture)
)
from tests.integration.test_overview_page import _config as _overview_config

pytestmark = [pytest.mark.kafka]

HOSTILE = '<script>document.title="owned"</script><b>divergence</b> & more'
WIDTH = 1280
# What the page script measures: the viewport, the document's width, and every
# rollout panel (or table inside one) whose content is wider than its box.
MEASURE = """JSON.stringify({
  viewport: window.innerWidth,
  document: document.documentElement.scrollWidth,
  panels: document.querySelectorAll('[data-panel="rollout"]').length,
  clipped: [...document.querySelectorAll('[data-panel="rollout"], [data-panel="rollout"] *')]
    .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).display !== 'inline')
    .map(e => `${e.tagName} ${e.getAttribute('class') || ''} ${e.scrollWidth}/${e.clientWidth}`),
  title: document.title,
})"""


def _analysis(session: Any, span: Span, settings: AnalysisSettings) -> list[Check]:
    bad = span.canary_percent == 25
    return [
        Check("sample_ratio", Outcome.PASS, 0.42, 0.001, 1200, 22800, "split as told"),
        Check(
            "prediction_divergence",
            Outcome.FAIL if bad else Outcome.PASS,
            0.31 if bad else 0.02,
            0.1,
            1200,
            22800,
            HOSTILE if bad else "distributions agree",
        ),
        Check(
            "accuracy_noninferiority",
            Outcome.INCONCLUSIVE,
            None,
            0.02,
            40,
            760,
            "40 labelled canary pairs of the 200 needed",
        ),
    ]


def _roll_out(config: Path) -> None:
    """v1 in production, v2 of an accepted run rolled out and rolled back at step 2."""
    cfg = load_config(config, env={})
    engine = make_engine(cfg.database.url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    with transaction(sessions) as s:
        registry = RegistryRepository(s)
        registry.register("fraud", "v1", "file:///m/v1.skops", "a" * 64, Stage.PRODUCTION, now)
        runs = RunRepository(s)
        run = runs.start("fraud", "request", "page test", now, now, "validating", now)
        assert run is not None
        v2 = registry.register(
            "fraud", "v2", "file:///m/v2.skops", "b" * 64, Stage.CANDIDATE, now, run_id=run.id
        )
        run.candidate_version_id = v2.id
        runs.enter(run, "accepted", "accepted", now, final=True)
        run_id = run.id
    routers = {name: FakeRouter() for name in cfg.models}
    driver = build_rollouts(cfg, sessions, analyse=_analysis, routers=routers)
    rollout_id = driver.start("fraud", run_id)
    for _ in range(20):
        driver.tick()
        with transaction(sessions) as s:
            row = RolloutRepository(s).get(rollout_id)
            assert row is not None
            if not row.active:
                break
    assert row.phase == "rolled_back"
    engine.dispose()


def _config(kafka: TestKafka, url: str, topic: str, port: int, tmp_path: Path) -> Path:
    """The overview test's service, API and token, with ``fraud``'s steps quick to walk."""
    config = _overview_config(kafka, url, topic, port, tmp_path)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    steps = [{"weight": w, "min_duration": "0s", "min_events": 1} for w in (5, 25, 50, 100)]
    raw["models"] = {
        "fraud": {**wide_model(4, 1, window="10s"), "rollout": {"steps": steps}},
        "plain": wide_model(4, 1, window="10s"),
    }
    config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return config


@contextmanager
def _devtools(binary: str, profile: Path) -> Iterator[ClientConnection]:
    """A headless Chromium at a 1280 px wide window and a DevTools connection to its page."""
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--window-size={WIDTH},2000",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Chromium writes the port it chose into its profile once it listens.
        port_file = profile / "DevToolsActivePort"
        until(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, 60)
        port = int(port_file.read_text().splitlines()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=30).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            yield ws
    finally:
        proc.kill()
        proc.wait()


class _Cdp:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def until_loaded(self, url: str) -> None:
        """Navigate and wait for the load event of the page the navigation ends on."""
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("method") == "Page.loadEventFired":
                return


def _measure(binary: str, profile: Path, url: str, shot: Path) -> dict[str, Any]:
    """The page's measurements (:data:`MEASURE`), and its screenshot written to ``shot``."""
    with _devtools(binary, profile) as ws:
        cdp = _Cdp(ws)
        cdp.until_loaded(url)
        value = cdp.call("Runtime.evaluate", expression=MEASURE, returnByValue=True)
        measured: dict[str, Any] = json.loads(value["result"]["value"])
        shot.write_bytes(base64.b64decode(cdp.call("Page.captureScreenshot")["data"]))
        return measured


def test_chromium_shows_the_rollout_panel_escaped_and_unclipped_at_1280_px(
    kafka: TestKafka,
    sqlite_url: str,
    tmp_path: Path,
    chromium: str,  # noqa: F811
) -> None:
    topic = f"overview-rollout-{os.getpid()}"
    create_topics(kafka, topic)
    port = _free_port()
    config = _config(kafka, sqlite_url, topic, port, tmp_path)
    _roll_out(config)
    svc = ServiceProcess(config, tmp_path / "service.log")
    svc.start()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/?token={TOKEN}"
    try:

        def serving() -> bool:
            assert svc.alive(), svc.log_text()
            try:
                return httpx.get(f"{base}/login", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        until(serving, 120)
        dumped = _chromium(chromium, tmp_path / "profile-dom", "--dump-dom", url)
        shot = tmp_path / "rollout.png"
        measured = _measure(chromium, tmp_path / "profile-cdp", url, shot)
    finally:
        assert svc.terminate() == 0, svc.log_text()
    assert dumped.returncode == 0, dumped.stderr
    _check_dom(dumped.stdout)
    assert measured["viewport"] == WIDTH and measured["panels"] == 2, measured
    assert measured["document"] <= WIDTH, measured
    assert measured["clipped"] == [], measured
    assert measured["title"] != "owned"
    with Image.open(shot) as image:
        assert image.width == WIDTH
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    # A blank or failed page is one or two flat colours; a chart, text and tables are many.
    assert colours is not None and len(colours) > 50


def _check_dom(text: str) -> None:
    dom = _Dom()
    dom.feed(text)
    assert not dom.find("script") and not dom.find("b")  # the reason's markup stayed text
    assert "&lt;script&gt;document.title" in text
    assert len(dom.find("div", "fraud", data_panel="rollout")) == 1
    (line,) = dom.find("polyline", "fraud", chart="canary weight")
    assert 2 <= len(line["points"].split()) <= 5
    assert dom.find("circle", "fraud", chart="canary weight", class_="flag")
    assert len(dom.find("table", "fraud", class_="rollout-history")) == 1
    checks = [a["data-check"] for a in dom.find("tr", "fraud") if "data-check" in a]
    assert checks == ["sample_ratio", "prediction_divergence", "accuracy_noninferiority"]
    fraud = re.search(r'data-model="fraud".*?</section>', text, re.S)
    assert fraud is not None
    body = fraud.group(0)
    for shown in ("rolled_back", "2 of 4", "v1", "v2", "inconclusive", "fail", "n/a", "0.31"):
        assert shown in body, shown
    # Rolled back: the router was last told 25%, the candidate serves nothing.
    assert re.search(r"2 of 4</td>\s*<td>0%</td>", body)
    # pending, step 1, step 2, rolling back, rolled back: the shares at each.
    shares = re.findall(r"<td>(\d+)%</td><td class=\"reason\">", body)
    assert shares == ["0", "5", "25", "0", "0"], shares
    plain = re.search(r'data-model="plain".*?</section>', text, re.S)
    assert plain is not None and "No rollout yet." in plain.group(0)
