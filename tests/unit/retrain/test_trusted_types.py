"""A champion of the user's own types validates once ``models.<name>.retrain.trusted_types``
lists them, under the local executor and the Kubernetes executor alike (the emulator's
kubelet runs the reference trainer for real); without the key its run fails naming them.

What the candidate is (the trainer's own estimator or a refit of the champion) is not
asserted: only that the jobs load the champion, so the run reaches a verdict."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.registry import RegistryRepository, Stage
from db.runs import RetrainRunRow, RunRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.lifecycle import Phase
from service.config import load_config
from service.dev.concept import CATEGORICAL, NUMERICAL, Era, draw
from service.wiring.retraining import build_retraining
from tests.harness.k8s.cluster import NAMESPACE, cluster, job_template, write_kubeconfig
from tests.harness.retrain import CopyExporter
from tests.unit.retrain.champions import FOREST_TYPES, forest_champion
from tests.unit.retrain.export import write_export
from tests.unit.retrain.support import T0

TRAINER = [sys.executable, "-m", "retrain.trainer"]


@contextmanager
def executor_settings(kind: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The config's ``retrain`` section for ``kind``, with its cluster up for Kubernetes."""
    base = {"workdir": str(tmp_path / "runs"), "artifacts_uri": str(tmp_path / "models")}
    if kind == "local":
        yield {**base, "executor": "local", "command": TRAINER}
        return
    with cluster(tmp_path) as (emulator, kubelet):
        assert kubelet is not None
        template = tmp_path / "job.yaml"
        template.write_text(yaml.safe_dump(job_template(TRAINER)), encoding="utf-8")
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", emulator.url)
        kubernetes = {
            "namespace": NAMESPACE,
            "template": str(template),
            "kubeconfig": str(kubeconfig),
        }
        yield {**base, "executor": "kubernetes", "kubernetes": kubernetes}


def run_once(
    sqlite_url: str, tmp_path: Path, retrain: dict[str, Any], trusted: list[str]
) -> RetrainRunRow:
    """Register the forest champion, request a run, drive it to its end."""
    features = {n: {"type": "numerical", "nullable": True} for n in NUMERICAL}
    features.update({c: {"type": "categorical", "nullable": True} for c in CATEGORICAL})
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"]},
        "database": {"url": sqlite_url},
        "models": {
            "fraud": {
                "window": "1m",
                "prediction": {"type": "numerical"},
                "features": features,
                "retrain": {"trusted_types": trusted, "min_holdout": 100},
            }
        },
        "retrain": retrain,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    cfg = load_config(path, env={})
    sessions = make_session_factory(make_engine(sqlite_url))
    champion = forest_champion(tmp_path / "champion.skops")
    with transaction(sessions) as s:
        # Stored as it was before registration checked artifacts (the CLI refuses it now).
        RegistryRepository(s).register("fraud", "v1", *champion, Stage.PRODUCTION, T0)
    marks = tmp_path / "marks"
    marks.mkdir()
    data = write_export(
        tmp_path / "post.parquet", draw(2_000, Era.POST, 7, block=40), NUMERICAL, CATEGORICAL
    )
    retraining = build_retraining(cfg, sessions, exporter=CopyExporter(data, marks))
    try:
        run_id = retraining.policy.request("fraud", "a user's champion").run_id
        assert run_id is not None
        deadline = time.monotonic() + 300  # a hang guard, not a timing assertion
        while not retraining.driver.step(run_id).final:
            assert time.monotonic() < deadline, f"run {run_id} unfinished after 300 s"
            time.sleep(0.1)
    finally:
        retraining.close()  # the Kubernetes executor's Job watch
    with transaction(sessions) as s:
        run = RunRepository(s).get(run_id)
        assert run is not None
        s.expunge(run)
        return run


@pytest.mark.parametrize("kind", ["local", "kubernetes"])
def test_with_the_key_the_users_champion_validates(
    sqlite_url: str, tmp_path: Path, kind: str
) -> None:
    with executor_settings(kind, tmp_path) as retrain:
        run = run_once(sqlite_url, tmp_path, retrain, list(FOREST_TYPES))
    assert run.phase in (Phase.ACCEPTED, Phase.REJECTED), (
        run.failure_reason,
        run.validate_log_tail or run.train_log_tail,
    )
    assert run.verdict == run.phase  # the validation job's result was judged


@pytest.mark.parametrize("kind", ["local", "kubernetes"])
def test_without_the_key_the_run_fails_naming_the_types(
    sqlite_url: str, tmp_path: Path, kind: str
) -> None:
    with executor_settings(kind, tmp_path) as retrain:
        run = run_once(sqlite_url, tmp_path, retrain, [])
    assert run.phase == Phase.FAILED and run.verdict is None
    # The reason may be shortened; the job's own log holds its whole message.
    said = "\n".join(
        t for t in (run.failure_reason, run.train_log_tail, run.validate_log_tail) if t
    )
    assert "holds types that are not trusted" in said, said
    for name in FOREST_TYPES:
        assert name in said, said
