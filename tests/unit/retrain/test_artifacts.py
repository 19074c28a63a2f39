"""Artifacts: skops through fsspec, sha256 checked first, only trusted types built."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from retrain.artifacts import TRUSTED_TYPES, artifact_types, load_model, save_model, sha256_hex
from retrain.errors import ArtifactError
from retrain.trainer.estimators import default_pipeline
from retrain.trainer.model import Task
from service.dev.concept import CATEGORICAL, NUMERICAL, Era, draw, scores, train_champion

# Minutes of wall clock: scheduled first under `make test` (tests/conftest.py).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champion() -> object:
    return train_champion(7, rows=2_000)


def test_a_saved_model_loads_back_with_the_same_scores(tmp_path: Path, champion: object) -> None:
    uri, sha256 = save_model(champion, str(tmp_path / "fraud" / "v1" / "model.skops"))
    assert sha256 == sha256_hex(Path(uri).read_bytes())
    loaded = load_model(uri, sha256.upper())
    rows = draw(500, Era.POST, 7)
    assert np.array_equal(scores(loaded, rows), scores(champion, rows))
    assert artifact_types(Path(uri).read_bytes()) <= TRUSTED_TYPES


def test_fsspec_uris_are_honoured(champion: object) -> None:
    uri, sha256 = save_model(champion, "memory://models/fraud/model.skops")
    rows = draw(100, Era.PRE, 7)
    assert np.array_equal(scores(load_model(uri, sha256), rows), scores(champion, rows))


def test_a_sha256_mismatch_is_refused_before_loading(tmp_path: Path, champion: object) -> None:
    uri, sha256 = save_model(champion, str(tmp_path / "model.skops"))
    other = "0" * 64
    with pytest.raises(ArtifactError, match=rf"^sha256 mismatch for {uri}$"):
        load_model(uri, other)
    data = bytearray(Path(uri).read_bytes())
    data[100] ^= 0x01
    Path(uri).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_model(uri, sha256)


def test_untrusted_types_are_refused_even_with_the_right_sha256(tmp_path: Path) -> None:
    x = np.arange(20.0).reshape(10, 2)
    tree = DecisionTreeClassifier(random_state=0).fit(x, np.arange(10) % 2)
    uri, sha256 = save_model(tree, str(tmp_path / "tree.skops"))
    with pytest.raises(ArtifactError, match=r"not trusted: .*DecisionTreeClassifier"):
        load_model(uri, sha256)
    trusted = artifact_types(Path(uri).read_bytes()) - TRUSTED_TYPES
    assert load_model(uri, sha256, extra_trusted=trusted).predict(x[:2]).tolist() == [0, 1]


def test_a_pickle_is_not_a_model_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"model": [NUMERICAL, CATEGORICAL]}))
    with pytest.raises(ArtifactError, match="not a skops file"):
        load_model(str(path), sha256_hex(path.read_bytes()))


def test_a_missing_artifact_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read the artifact"):
        load_model(str(tmp_path / "nope.skops"), "0" * 64)


@pytest.mark.parametrize(
    ("task", "labels"),
    [
        (Task.CLASSIFICATION, ["0", "1"]),
        (Task.CLASSIFICATION, ["low", "mid", "high"]),
        (Task.REGRESSION, None),
    ],
    ids=["two-classes", "three-classes", "regression"],
)
def test_a_fitted_default_pipeline_loads_with_no_extra_types(
    tmp_path: Path, task: Task, labels: list[str] | None
) -> None:
    rows = draw(3_000, Era.PRE, 7)  # missing values in a numerical and a categorical feature
    assert rows["distance_km"].isna().any() and rows["channel"].isna().any()
    x = rows[[*NUMERICAL, *CATEGORICAL]]
    rng = np.random.default_rng(0)
    y = rng.normal(size=len(rows)) if labels is None else rng.choice(labels, len(rows))
    for fitted_rows in (len(rows), 500):  # with and without early stopping
        model = default_pipeline(task, NUMERICAL, CATEGORICAL, fitted_rows)
        model.fit(x.iloc[:fitted_rows], y[:fitted_rows])
        uri, sha256 = save_model(model, str(tmp_path / f"default-{fitted_rows}.skops"))
        assert sorted(artifact_types(Path(uri).read_bytes()) - TRUSTED_TYPES) == []
        loaded = load_model(uri, sha256)
        assert np.array_equal(loaded.predict(x), model.predict(x))
