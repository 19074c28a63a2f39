"""``python -m service.dev.serving``: a scenario's events, split as the router file says,
on a real broker."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import yaml

from retrain.artifacts import save_model
from retrain.rollout.base import Target
from retrain.rollout.file import FileRouter, load
from service.dev.concept import Era, draw, fit, linear_pipeline
from service.dev.model_server import bucket
from service.dev.serving import main
from tests.harness.kafka import TestKafka
from tests.harness.scenario import write_config

pytestmark = pytest.mark.kafka

DEMO = Path(__file__).parents[2] / "service" / "examples" / "demo.yaml"


def _config(kafka: TestKafka, tmp_path: Path, topic: str) -> Path:
    fraud = yaml.safe_load(DEMO.read_text(encoding="utf-8"))["models"]["fraud"]
    return write_config(
        tmp_path / "config.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        topic=topic,
        group_id=f"group-{topic}",
        models={"fraud": fraud},
    )


def test_the_cli_serves_the_champion_then_the_split_the_file_names(
    kafka: TestKafka, topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the champion is trained under driftwatch-models/ here
    config = _config(kafka, tmp_path, topic)
    router_file = tmp_path / "rollout.json"
    argv = ["--config", str(config), "--router-file", str(router_file), "--rate", "100"]
    assert main([*argv, "--duration", "5s", "--drift-at", "3s"]) == 0
    champion = load(router_file)
    assert champion is not None and champion.canary is None
    assert champion.stable.version == "v1"
    assert Path(champion.stable.uri) == (tmp_path / "driftwatch-models/fraud/champion.skops")

    candidate = fit(linear_pipeline(), draw(2_000, Era.POST, 7, block=5))
    canary = Target("v2", *save_model(candidate, str(tmp_path / "v2.skops")))
    FileRouter(router_file, "fraud").set_weights(champion.stable, canary, 40)
    assert main([*argv, "--duration", "10s", "--seed", "8"]) == 0

    bodies = [msgspec.json.decode(r.value) for r in kafka.read_all(topic)]
    labels = {msgspec.json.decode(r.value)["event_id"] for r in kafka.read_all(f"{topic}-labels")}
    assert len(bodies) == 1_500 and labels == {b["event_id"] for b in bodies}
    # Event ids carry the seed: c007- the first run's, c008- the second's.
    first = [b for b in bodies if b["event_id"].startswith("c007-")]
    second = [b for b in bodies if b["event_id"].startswith("c008-")]
    assert (len(first), len(second)) == (500, 1_000)
    assert {b["model_version"] for b in first} == {"v1"}
    for body in second:
        assert body["model_version"] == ("v2" if bucket(body["event_id"]) < 40 else "v1")
    assert 300 < sum(b["model_version"] == "v2" for b in second) < 500
