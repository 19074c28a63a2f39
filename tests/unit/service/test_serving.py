"""The demo's and the benches' model server: the file router's split over real skops models."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from consumers.events import EventDecoder
from consumers.synthetic import SyntheticPlan
from drift.latency_sketch import MAX_LATENCY_MS
from retrain.artifacts import load_model, save_model
from retrain.rollout.base import Target
from retrain.rollout.file import FileRouter, load, write_atomically
from service.config import load_config
from service.dev.concept import (
    FEATURES,
    ConceptStream,
    Era,
    Scenario,
    draw,
    fit,
    scores,
    train_champion,
)
from service.dev.errors import ServingError
from service.dev.model_server import ModelServer, bucket, features_frame
from service.dev.scenarios import SCENARIOS
from service.dev.serving import ServedStream, ensure_router_file

DEMO = Path(__file__).parents[3] / "service" / "examples" / "demo.yaml"
IDS = [f"req-{i:06d}" for i in range(20_000)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _models(tmp_path: Path, scenario: Scenario) -> tuple[Target, Target]:
    """The champion (stable, v1) and a model fitted on post-drift rows (canary, v2), saved."""
    champion = train_champion(7, rows=2_000, scenario=scenario)
    candidate = fit(scenario.pipeline(), draw(2_000, Era.POST, 7, block=5, scenario=scenario))
    stable = Target("v1", *save_model(champion, str(tmp_path / "v1.skops")))
    canary = Target("v2", *save_model(candidate, str(tmp_path / "v2.skops")))
    return stable, canary


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Target, Target]:
    return _models(tmp_path_factory.mktemp("models"), SCENARIOS["concept"])


def _server(tmp_path: Path, stable: Target, canary: Target | None, percent: int) -> ModelServer:
    router = FileRouter(tmp_path / "rollout.json", "fraud")
    if canary is None:
        router.promote(stable)
    else:
        router.set_weights(stable, canary, percent)
    return ModelServer(router.path, "fraud", clock=Clock())


def _canary_share(server: ModelServer, ids: list[str]) -> int:
    return sum(server.pick(i).target.version == "v2" for i in ids)


@pytest.mark.parametrize("percent", [5, 25, 50])
def test_the_split_follows_the_weight_over_20000_ids(
    tmp_path: Path, targets: tuple[Target, Target], percent: int
) -> None:
    server = _server(tmp_path, *targets, percent)
    expected = len(IDS) * percent / 100
    spread = math.sqrt(expected * (1 - percent / 100))
    assert abs(_canary_share(server, IDS) - expected) <= 4 * spread
    # The same id, asked again or of another server, gets the same version.
    again = ModelServer(server.path, "fraud")
    assert [server.pick(i).target.version for i in IDS[:2_000]] == [
        again.pick(i).target.version for i in IDS[:2_000]
    ]


def test_an_id_in_the_canary_stays_there_as_the_weight_grows() -> None:
    at_5 = {i for i in IDS if bucket(i) < 5}
    at_25 = {i for i in IDS if bucket(i) < 25}
    assert at_5 < at_25
    assert all(0.0 <= bucket(i) < 100.0 for i in IDS)


@pytest.mark.parametrize(("percent", "canary_ids"), [(0, 0), (100, len(IDS))])
def test_0_percent_serves_only_stable_and_100_only_canary(
    tmp_path: Path, targets: tuple[Target, Target], percent: int, canary_ids: int
) -> None:
    assert _canary_share(_server(tmp_path, *targets, percent), IDS) == canary_ids


def test_a_promotion_is_served_once_the_file_is_read_again(
    tmp_path: Path, targets: tuple[Target, Target]
) -> None:
    stable, canary = targets
    router = FileRouter(tmp_path / "rollout.json", "fraud")
    router.set_weights(stable, canary, 10)
    clock = Clock()
    server = ModelServer(router.path, "fraud", reread_ms=1_000, clock=clock)
    before = _canary_share(server, IDS[:500])
    assert 0 < before < 100
    candidate = server.pick(next(i for i in IDS if bucket(i) < 10)).model
    router.promote(canary)
    clock.now = 0.999  # not yet due: the split read before still holds
    assert _canary_share(server, IDS[:500]) == before
    clock.now = 1.0
    assert _canary_share(server, IDS[:500]) == 500
    state = server.state
    assert state is not None and state.stable == canary and state.canary is None
    assert server.pick(IDS[0]).model is candidate  # cached by sha256, not loaded again
    router.rollback(stable)
    assert server.refresh() is True
    assert not server.refresh()  # same content: nothing to apply
    assert _canary_share(server, IDS[:500]) == 0


@pytest.mark.parametrize("name", ["concept", "interaction"])
def test_predictions_are_the_served_models_own_scores(tmp_path: Path, name: str) -> None:
    scenario = SCENARIOS[name]
    stable, canary = _models(tmp_path, scenario)
    server = _server(tmp_path, stable, canary, 50)
    rows = draw(400, Era.POST, 7, block=9, scenario=scenario)
    ids = IDS[:400]
    own = {t.version: scores(load_model(t.uri, t.sha256), rows) for t in (stable, canary)}
    served = server.serve_batch(ids, rows[list(FEATURES)])
    assert {s.version for s in served} == {"v1", "v2"}
    for i, s in enumerate(served):
        assert s.version == server.pick(ids[i]).target.version
        assert s.prediction == pytest.approx(own[s.version][i], rel=1e-9, abs=1e-12)
    records = rows[list(FEATURES)].to_dict("records")
    for i in (0, 1, 2, 3):
        features = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in records[i].items()}  # fmt: skip
        one = server.serve(ids[i], features)
        assert one.version == served[i].version
        assert one.prediction == pytest.approx(served[i].prediction, rel=1e-9, abs=1e-12)


def test_a_missing_numerical_reaches_the_model_as_nan() -> None:
    frame = features_frame([{"amount": None, "age_days": 3, "country": "DE", "channel": None}])
    assert frame["amount"].isna().all() and frame["age_days"].dtype == np.float64


def test_a_tampered_artifact_is_refused_for_its_version_only(
    tmp_path: Path, targets: tuple[Target, Target]
) -> None:
    stable, canary = targets
    tampered = tmp_path / "v2-tampered.skops"
    data = bytearray(Path(canary.uri).read_bytes())
    data[-1] ^= 0xFF
    tampered.write_bytes(bytes(data))
    bad = Target("v2", str(tampered), canary.sha256)
    server = _server(tmp_path, stable, bad, 50)
    assert _canary_share(server, IDS[:1_000]) == 0  # the canary's share goes to stable
    assert "sha256 mismatch" in server.failures["v2"]
    # A bad stable leaves the canary serving everything.
    server = _server(tmp_path, Target("v1", str(tampered), stable.sha256), canary, 10)
    assert _canary_share(server, IDS[:1_000]) == 1_000
    assert set(server.failures) == {"v1"}
    # Neither loads: nothing to serve.
    with pytest.raises(ServingError, match="no version"):
        _server(tmp_path, Target("v1", str(tampered), stable.sha256), bad, 10).pick("x")


def test_a_fixed_canary_is_loaded_once_the_file_names_it(
    tmp_path: Path, targets: tuple[Target, Target]
) -> None:
    stable, canary = targets
    router = FileRouter(tmp_path / "rollout.json", "fraud")
    router.set_weights(stable, Target("v2", str(tmp_path / "absent.skops"), canary.sha256), 50)
    server = ModelServer(router.path, "fraud", clock=Clock())
    assert _canary_share(server, IDS[:1_000]) == 0 and "v2" in server.failures
    router.set_weights(stable, canary, 50)
    assert server.refresh()
    assert 400 < _canary_share(server, IDS[:1_000]) < 600 and server.failures == {}


def test_no_file_or_another_models_file_is_an_error_until_one_was_read(
    tmp_path: Path, targets: tuple[Target, Target]
) -> None:
    path = tmp_path / "rollout.json"
    with pytest.raises(ServingError, match="no rollout file"):
        ModelServer(path, "fraud").pick("x")
    FileRouter(path, "churn").promote(targets[0])
    with pytest.raises(ServingError, match="holds model 'churn'"):
        ModelServer(path, "fraud").pick("x")
    path.unlink()
    server = _server(tmp_path, targets[0], None, 0)
    assert server.refresh() is True
    write_atomically(path, b"{not json")
    assert server.refresh() is False  # the split read before is kept
    assert server.pick("x").target == targets[0]
    path.unlink()
    assert server.refresh() is False and server.pick("x").target == targets[0]


def test_events_carry_the_version_that_served_them(
    tmp_path: Path, targets: tuple[Target, Target]
) -> None:
    stable, canary = targets
    spec = load_config(DEMO).model_specs()["fraud"]
    plan = SyntheticPlan(spec, rate=10.0, start=1_000.0, drift_at=300.0, seed=7)
    server = _server(tmp_path, stable, canary, 30)
    stream = ServedStream(plan, server)
    events = [stream.event(i, 1_000.0 + i / 10.0) for i in range(5_000)]
    bodies = [msgspec.json.decode(e.prediction) for e in events]
    versions = [b["model_version"] for b in bodies]
    assert versions == [server.pick(b["event_id"]).target.version for b in bodies]
    assert stream.served == {"v1": versions.count("v1"), "v2": versions.count("v2")}
    assert abs(versions.count("v2") - 1_500) <= 4 * math.sqrt(5_000 * 0.3 * 0.7)
    own = {t.version: load_model(t.uri, t.sha256) for t in targets}
    frame = features_frame([b["features"] for b in bodies])
    predictions = np.array([b["prediction"] for b in bodies])
    for version, model in own.items():
        mine = np.array(versions) == version
        expected = np.round(scores(model, frame[mine]), 5)
        assert np.allclose(predictions[mine], expected, rtol=0, atol=1e-5)
    # The ground truth is the scenario's: the champion's stream has the same labels.
    plain = ConceptStream(plan, own["v1"])
    assert [e.label for e in events] == [plain.event(i, e.event_time).label
                                         for i, e in enumerate(events)]  # fmt: skip


def test_at_0_percent_the_stream_is_the_champions_stream(
    tmp_path: Path, targets: tuple[Target, Target]
) -> None:
    stable, canary = targets
    spec = load_config(DEMO).model_specs()["fraud"]
    plan = SyntheticPlan(spec, rate=10.0, start=1_000.0, drift_at=100.0, seed=7)
    served = ServedStream(plan, _server(tmp_path, stable, canary, 0), measure_latency=True)
    plain = ConceptStream(plan, load_model(stable.uri, stable.sha256))
    times = [1_000.0 + i / 10.0 for i in range(2_000)]
    ours = [served.event(i, t) for i, t in enumerate(times)]
    theirs = [plain.event(i, t) for i, t in enumerate(times)]
    assert [(e.key, e.label, e.event_time) for e in ours] == [
        (e.key, e.label, e.event_time) for e in theirs
    ]
    # The same predictions; the server stamps the latency it measured instead.
    bodies = [msgspec.json.decode(e.prediction) for e in ours]
    latencies = [b.pop("latency_ms") for b in bodies]
    for body in (msgspec.json.decode(e.prediction) for e in theirs):
        assert body.pop("latency_ms") == 2.0
        assert body == bodies.pop(0)
    assert all(isinstance(x, float) and 0.0 <= x <= MAX_LATENCY_MS for x in latencies)
    # Decoded by ingestion's own decoder: every one is a valid latency.
    decoder = EventDecoder({"fraud": plan.model})
    assert [decoder.decode_prediction(e.prediction).latency_ms for e in ours] == latencies
    # By default the server stamps none: ingestion counts the events, not a latency.
    (tmp_path / "again").mkdir()
    unmeasured = ServedStream(plan, _server(tmp_path / "again", stable, canary, 0))
    events = [unmeasured.event(i, t) for i, t in enumerate(times[:50])]
    assert {decoder.decode_prediction(e.prediction).latency_ms for e in events} == {None}


def test_a_new_router_file_names_the_given_champion_as_stable(
    tmp_path: Path, targets: tuple[Target, Target]
) -> None:
    stable, _ = targets
    path = tmp_path / "rollout.json"
    ensure_router_file(path, "fraud", SCENARIOS["concept"], 7, "v1", stable.uri)
    state = load(path)
    assert state is not None
    assert (state.stable, state.canary, state.canary_percent) == (
        Target("v1", str(Path(stable.uri).resolve()), stable.sha256),
        None,
        0,
    )
    # An existing file is the serving layer's state: it is left as it is.
    FileRouter(path, "fraud").promote(Target("v7", stable.uri, stable.sha256))
    ensure_router_file(path, "fraud", SCENARIOS["concept"], 7, "v1", stable.uri)
    state = load(path)
    assert state is not None and state.stable.version == "v7"
