"""The retraining loop as a real process a test may SIGKILL, and a contract-honouring
stub trainer whose every start is recorded.

``python -m tests.harness.retrain loop CONFIG SOURCE DIR`` runs the service's
retraining tick (policy, then one step of every active run) in a loop, with
an exporter that copies the Parquet file SOURCE. ``python -m
tests.harness.retrain train`` is a trainer for ``retrain.command``. Both
append a line to ``DIR/starts`` when they begin an export or a job, and wait
while ``DIR/hold-<what>`` exists and ``DIR/go-<what>`` does not, so a test can
hold the loop inside a phase and kill it there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
DIR_ENV = "RETRAIN_TEST_DIR"


def _mark_and_hold(directory: Path, what: str) -> None:
    with open(directory / "starts", "a", encoding="utf-8") as f:
        f.write(f"{what} {os.getpid()}\n")
    while (directory / f"hold-{what}").exists() and not (directory / f"go-{what}").exists():
        time.sleep(0.05)


def starts(directory: Path) -> list[str]:
    """What began, in order: export, train, validate."""
    path = directory / "starts"
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()]


class CopyExporter:
    def __init__(self, source: Path, directory: Path) -> None:
        self.source = source
        self.directory = directory

    def __call__(self, model: str, start: datetime, end: datetime, dest: str) -> int:
        _mark_and_hold(self.directory, "export")
        shutil.copyfile(self.source, dest)
        return int(pq.read_metadata(dest).num_rows)


def loop(config: str, source: str, directory: str) -> None:
    from db.session import make_engine, make_session_factory
    from retrain.exports import BackgroundExports
    from service.config import load_config
    from service.wiring.retraining import build_retraining

    cfg = load_config(config, env={})
    sessions = make_session_factory(make_engine(cfg.database.url))
    # As the service runs them: each export on a thread beside the tick.
    retraining = build_retraining(
        cfg,
        sessions,
        exporter=CopyExporter(Path(source), Path(directory)),
        exports=BackgroundExports(),
    )
    while True:
        retraining.tick()
        time.sleep(cfg.retrain.tick)


def train() -> None:
    """The environment contract, minimally: accuracy comes from the environment."""
    directory = Path(os.environ[DIR_ENV])
    mode = os.environ["DRIFTWATCH_MODE"]
    _mark_and_hold(directory, mode)
    if mode == "train":
        out = Path(os.environ["DRIFTWATCH_OUTPUT_URI"])
        out.mkdir(parents=True, exist_ok=True)
        artifact = out / "model.bin"
        artifact.write_bytes(b"model of run " + os.environ["DRIFTWATCH_RUN_ID"].encode())
        result: dict[str, object] = {
            "model_uri": str(artifact),
            "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
            "metrics": {"accuracy": float(os.environ.get("STUB_CANDIDATE_ACCURACY", "0.9"))},
            "rows": {"train": 400, "holdout": 100},
            "trainer": "stub",
        }
    else:
        result = {
            "holdout_rows": 300,
            "champion": {"metrics": {"accuracy": 0.7}, "slices": {}},
            "candidate": {
                "metrics": {"accuracy": float(os.environ.get("STUB_CANDIDATE_ACCURACY", "0.9"))},
                "slices": {},
            },
        }
    Path(os.environ["DRIFTWATCH_RESULT_PATH"]).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1] == "loop":
        loop(*sys.argv[2:5])
    else:
        train()
