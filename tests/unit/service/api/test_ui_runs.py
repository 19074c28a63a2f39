"""A run's detail on the overview page: its data, gates and timeline, as the CLI reads them."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient

from db.runs import GateRecord, RunRepository
from db.session import transaction
from service.api.app import create_app
from service.cli.run_record import gate_label, load_records, show_json
from tests.unit.retrain.support import T0
from tests.unit.service.api.conftest import READ, Api
from tests.unit.service.api.test_ui import sign_in

GATES = [
    GateRecord("min_holdout", None, None, None, 3514.0, 200.0, True),
    GateRecord("min_delta", "accuracy", None, 0.7312, 0.8127, 0.0, True),
    GateRecord("slice_max_degradation", "accuracy", "DE", 0.75, 0.74, 0.02, True),
]


def _accepted_run(api: Api) -> int:
    with transaction(api.sessions) as s:
        runs = RunRepository(s)
        run = runs.start(
            "fraud",
            "drift",
            "2 drifted windows",
            T0 - timedelta(minutes=2),
            T0,
            "pending",
            T0,
            change_onset=T0 - timedelta(seconds=90),
            data_note="from the change onset, 4100 rows",
        )
        assert run is not None
        run.data_rows = 4100
        runs.enter(run, "training", "4100 labelled rows exported", T0 + timedelta(seconds=5))
        runs.enter(run, "validating", "candidate trained", T0 + timedelta(seconds=65))
        runs.add_gates(run.id, GATES)
        runs.enter(run, "accepted", "accepted", T0 + timedelta(seconds=95), final=True)
        run.verdict = "accepted"
        return run.id


def test_a_run_shows_its_data_gates_and_timeline_as_the_cli_reads_them(sqlite_api: Api) -> None:
    run_id = _accepted_run(sqlite_api)
    with TestClient(create_app(sqlite_api.deps), follow_redirects=False) as browser:
        sign_in(browser, READ)
        page = browser.get("/").text
    found = re.search(rf'<details class="run" id="run-fraud-{run_id}".*?</details>', page, re.S)
    assert found is not None
    detail = found.group(0)
    assert 'href="#run-fraud-1"' in page  # the runs table links each run to its detail
    assert " open>" in detail  # the newest run is unfolded
    assert f"<summary>Run {run_id}: accepted</summary>" in detail  # not "accepted (accepted)"
    with transaction(sqlite_api.sessions) as s:
        run = RunRepository(s).get(run_id)
        assert run is not None
        (record,) = load_records(s, [run])
        cli = show_json(record, T0 + timedelta(hours=1))
    assert "2026-11-27 11:58:00 \u2013 2026-11-27 12:00:00, 4100 rows" in detail
    assert cli["data"]["rows"] == 4100
    assert "<th>change onset</th><td>2026-11-27 11:58:30</td>" in detail
    assert "from the change onset, 4100 rows" in detail
    assert "pending 5.0 s, training 60.0 s, validating 30.0 s" in detail
    rows = re.findall(r'<tr data-gate="([^"]+)">(.*?)</tr>', detail)
    assert [label for label, _ in rows] == [gate_label(g) for g in record.gates]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", body) for _, body in rows]
    assert cells[0][1:4] == ["\u2013", "3514", "200"]  # holdout rows are counted, not measured
    assert cells[1][1:4] == ["0.7312", "0.8127", "0"]
    assert [g["candidate"] for g in cli["gates"]] == [3514.0, 0.8127, 0.74]
    timeline = re.findall(r"<tr><td>[^<]+</td><td>(\w+)</td><td[^>]*>([^<]*)</td></tr>", detail)
    assert timeline == [
        ("pending", "2 drifted windows"),
        ("training", "4100 labelled rows exported"),
        ("validating", "candidate trained"),
        ("accepted", ""),  # the note only repeated the phase
    ]
    assert [p["phase"] for p in cli["timeline"]] == [p for p, _ in timeline]
