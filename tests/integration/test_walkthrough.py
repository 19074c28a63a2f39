"""The retraining walkthrough (docs/walkthrough.md), run as a new user runs it.

The page's two shell blocks are taken from it and run by bash, unchanged, in an
empty directory holding ``service/examples/demo.yaml``. The first: the documented
broker, ``driftwatch run``, ``produce-demo`` writing the champion's reference
rows, the reference build, the registration and ``retrain --wait``. Between the
blocks the test does what the page asks of the reader: a copy of the demo config,
``demo/c.yaml``, with the page's ``rollout`` block under ``models.fraud``. The
second: the service restarted on it, the model server, ``rollouts start``.

The demo config's commented ``api:`` block is uncommented, as its comment says
to do for the overview page, and its files are made by the commands that comment
gives. After the first block the API lists the judged windows (calm before the
drift point, drifted after it) and the overview page has no empty chart; after
the second the rollout is promoted through its three steps.

Only the ports move (``DRIFTWATCH_*`` overrides, as the config file documents),
so that a test run shares the machine with anything else.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import _unavailable
from tests.harness.scenario import REPO

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WALKTHROUGH = REPO / "docs" / "walkthrough.md"
DEMO = REPO / "service" / "examples" / "demo.yaml"
WINDOWS = 12  # produce-demo's 120 s of 10 s windows: 12, or 13 when not aligned
EMPTY_CHART = "no windows judged yet"
FIRST_DONE, SECOND_GO, SECOND_DONE = "first.done", "second.go", "second.done"


def blocks(kind: str) -> list[str]:
    """The page's code blocks of ``kind`` (sh, yaml), in order."""
    text = WALKTHROUGH.read_text(encoding="utf-8")
    return [b for k, b in re.findall(r"```(\w+)\n(.*?)```", text, re.S) if k == kind]


def demo_config_with_api() -> tuple[str, list[str]]:
    """demo.yaml with its ``api:`` block uncommented, and the comment's commands making
    the block's files (the token and the session secret)."""
    lines = DEMO.read_text(encoding="utf-8").splitlines()
    start = lines.index("# api:")
    end = start
    while end < len(lines) and lines[end].startswith("# "):
        end += 1
    uncommented = [line[2:] for line in lines[start:end]]
    commands = [
        line.removeprefix("#").split("#")[0].strip()
        for line in lines
        if line.startswith("#   openssl rand")
    ]
    assert len(commands) == 2, commands
    return "\n".join([*lines[:start], *uncommented, *lines[end:]]) + "\n", commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def walkthrough(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes], str]]:
    """The block running under bash in ``tmp_path``; its process group is ended afterwards."""
    if shutil.which("java") is None:
        _unavailable("no java on PATH for the walkthrough's local Kafka")
    config, make_files = demo_config_with_api()
    first, second = blocks("sh")
    (tmp_path / "service" / "examples").mkdir(parents=True)
    (tmp_path / "service" / "examples" / "demo.yaml").write_text(config, encoding="utf-8")
    script = "\n".join(
        [
            "set -euo pipefail",
            "mkdir -p demo",
            *make_files,
            first,
            # The reader's turn: the checks of the first block, and demo/c.yaml.
            f"touch {FIRST_DONE}",
            f"until [ -e {SECOND_GO} ]; do sleep 1; done",
            second,
            f"touch {SECOND_DONE}",
            "wait",  # the background jobs stay up for the checks
        ]
    )
    (tmp_path / "walkthrough.sh").write_text(script, encoding="utf-8")
    api = _free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DRIFTWATCH_METRICS__PORT": str(_free_port()),
        "DRIFTWATCH_API__PORT": str(api),
    }
    with (tmp_path / "walkthrough.log").open("wb") as log:
        shell = subprocess.Popen(
            ["bash", "walkthrough.sh"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield tmp_path, shell, f"http://127.0.0.1:{api}"
    finally:
        _end_group(shell)


def _end_group(shell: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the block's jobs (the broker, ``driftwatch run``), which shut down
    in their own time; SIGKILL to whatever is left after a minute."""
    os.killpg(shell.pid, signal.SIGTERM)
    shell.wait(timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(shell.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(shell.pid, signal.SIGKILL)


def _log(workdir: Path) -> str:
    return (workdir / "walkthrough.log").read_text(encoding="utf-8", errors="replace")


def _tail(workdir: Path) -> str:
    return _log(workdir)[-6000:]


def _wait_for(marker: str, workdir: Path, shell: subprocess.Popen[bytes]) -> None:
    # Bounded only so that a hung command fails the test instead of the whole run.
    deadline = time.monotonic() + 600
    while not (workdir / marker).exists():
        assert shell.poll() is None, f"a walkthrough command failed:\n{_tail(workdir)}"
        assert time.monotonic() < deadline, f"the walkthrough hangs:\n{_tail(workdir)}"
        time.sleep(1)


def _judged(api: str, token: str, workdir: Path) -> list[dict[str, object]]:
    """Every window's drift report, once all of produce-demo's windows have one."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 300
    items: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        r = httpx.get(f"{api}/v1/models/fraud/drift", params={"limit": 100}, headers=headers)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        if len(items) >= WINDOWS:
            return sorted(items, key=lambda i: str(i["window_start"]))
        time.sleep(1)
    raise AssertionError(f"{len(items)} windows judged:\n{_tail(workdir)}")


def _check_first_block(workdir: Path, api: str, token: str) -> None:
    log = _log(workdir)
    assert "reference profile v1 of model fraud: 20000 rows" in log, log[-6000:]
    assert "run 1 of fraud: accepted" in log, log[-6000:]
    judged = _judged(api, token, workdir)
    flags = [i["dataset_drift"] for i in judged]
    seen = [
        (i["window_start"], i["events"], i["features_drifted"], i["features_judged"])
        for i in judged
    ]
    # The first and the last window can be partial: with fewer events than
    # drift.min_rows_distance they have no verdict (None), every other window has one.
    assert None not in flags[1:-1], seen
    verdicts = [f for f in flags if f is not None]
    # The drift point is 30 s into the stream: its window may go either way, the
    # whole windows before it are calm and every one after it has drifted.
    calm = verdicts.index(True)
    assert calm >= 2 and not any(verdicts[:calm]) and all(verdicts[calm + 1 :]), seen
    with httpx.Client(base_url=api) as browser:
        signed = browser.post("/login", data={"token": token})
        assert signed.status_code == 303, signed.text
        page = browser.get("/")
        assert page.status_code == 200
        assert 'data-chart="drifted feature share"' in page.text
        assert EMPTY_CHART not in page.text


def _rollout_config(workdir: Path) -> None:
    """demo/c.yaml: the demo config with the page's rollout block under models.fraud."""
    (rollout,) = blocks("yaml")
    raw = yaml.safe_load((workdir / "service" / "examples" / "demo.yaml").read_text())
    raw["models"]["fraud"].update(yaml.safe_load(rollout))
    (workdir / "demo" / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")


def _finished_rollout(api: str, token: str, workdir: Path) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 600
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = httpx.get(f"{api}/v1/rollouts/1", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        if not body["active"]:
            return body
        time.sleep(1)
    raise AssertionError(f"rollout 1 still {body.get('phase')}:\n{_tail(workdir)}")


def test_the_walkthrough_as_documented_judges_drift_and_promotes_the_refit(
    walkthrough: tuple[Path, subprocess.Popen[bytes], str],
) -> None:
    workdir, shell, api = walkthrough
    _wait_for(FIRST_DONE, workdir, shell)
    token = (workdir / "demo" / "admin.token").read_text(encoding="utf-8").strip()
    _check_first_block(workdir, api, token)
    _rollout_config(workdir)
    (workdir / SECOND_GO).touch()
    _wait_for(SECOND_DONE, workdir, shell)
    rollout = _finished_rollout(api, token, workdir)
    assert rollout["phase"] == "promoted", (rollout, _tail(workdir))
    progressed = [h["step"] for h in rollout["history"] if h["phase"] == "progressing"]
    assert progressed == [1, 2, 3], rollout["history"]
