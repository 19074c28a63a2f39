"""The real-model scenarios (``produce-demo --scenario concept|interaction``): real models.

A scenario is a :class:`Scenario`: a seeded ground truth per era and the
champion's pipeline. The truth maps a fraud model's features (those of
``service/examples/demo.yaml``) to the label: ``P(label = 1) =
sigmoid(SHARPNESS * s)``, where ``s`` adds a weight per numerical feature
(standardised), an effect per category and, optionally, a weight per product
of two standardised numericals; labels are drawn from that, so even the best
model errs (noise). The champion is a real scikit-learn pipeline trained on
pre-drift rows, and every prediction event carries its score of the event's
features.

This module holds the machinery and the ``concept`` scenario (:data:`CONCEPT`);
``service/dev/interaction.py`` holds the ``interaction`` one. In ``concept``
the champion is a logistic regression. At the drift point the covariates shift
(numerical means move by 1-1.5 standard deviations, country and channel shares
change) and the concept changes (weights and category effects swap sign or
move), so the champion loses far more than 10 points of accuracy, while a model
trained on post-drift rows gets the pre-drift accuracy back: the concept is
written in each era's own standardised units, so its noise, and the best
accuracy within reach, is the same before and after. Figures for seed 7,
pinned by ``tests/unit/retrain/test_concept.py``: see :data:`PINNED`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from consumers.synthetic import SyntheticEvent, SyntheticPlan
from drift.schema import FeatureKind, ModelSpec, PredictionKind
from retrain.artifacts import load_model, read_artifact, save_model, sha256_hex
from service.errors import ConfigError

SHARPNESS = 2.5
NULL_SHARE = 0.03  # of the nullable features' values (the truth still used them)
CHAMPION_ROWS = 20_000
_BLOCK = 4096
# Blocks of draws no event stream reaches (events use blocks 0, 1, ...): training and
# evaluation rows are never the events themselves.
_TRAINING_BLOCK, _EVALUATION_BLOCK, _RETRAINING_BLOCK = 2**31, 2**31 + 1, 2**31 + 2
_REFERENCE_BLOCK = 2**31 + 3
# Rows to score a model retrained in a closed loop on: no stream, training or figure uses them.
FRESH_BLOCK = 2**31 + 4
NUMERICAL = ("amount", "age_days", "txn_per_hour", "distance_km")
CATEGORICAL = ("country", "channel")
FEATURES = (*NUMERICAL, *CATEGORICAL)
NULLABLE = ("distance_km", "channel")
COUNTRIES = ("DE", "FR", "US", "GB", "NL")
CHANNELS = ("web", "app", "pos")
MISSING_CATEGORY = "__missing__"
_STDS = np.array([20.0, 150.0, 1.5, 10.0])


class Era(IntEnum):
    PRE = 0
    POST = 1


@dataclass(frozen=True)
class Truth:
    """One era's world: where the inputs lie, and the concept that labels them."""

    means: np.ndarray
    weights: np.ndarray
    country_p: tuple[float, ...]
    country_effect: tuple[float, ...]
    channel_p: tuple[float, ...]
    channel_effect: tuple[float, ...]
    # (i, j, w): w times the product of the standardised numericals i and j (of NUMERICAL).
    products: tuple[tuple[int, int, float], ...] = ()

    def score(self, z: np.ndarray, country: np.ndarray, channel: np.ndarray) -> np.ndarray:
        s = (
            z @ self.weights
            + np.asarray(self.country_effect)[country]
            + np.asarray(self.channel_effect)[channel]
        )
        for i, j, w in self.products:
            s = s + w * z[:, i] * z[:, j]
        return np.asarray(s, dtype=float)


@dataclass(frozen=True)
class Figures:
    """Accuracies on fresh rows: the champion before and after the drift; after it, the
    champion's pipeline refitted (``sklearn.base.clone``) and a linear pipeline fitted on
    the same post-drift rows."""

    champion_pre: float
    champion_post: float
    retrained_post: float
    linear_post: float


def linear_pipeline() -> Pipeline:
    """A logistic regression on scaled numericals and one-hot categories (a missing value is
    a category of its own, an unseen one is ignored): the ``concept`` champion, and the
    linear refit every scenario's figures quote."""
    # pandas marks a missing text value as NaN or None depending on where the frame came
    # from (CSV, Parquet, JSON); one imputer sees only NaN, the next only None.
    encode = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
        SimpleImputer(missing_values=None, strategy="constant", fill_value=MISSING_CATEGORY),
        OneHotEncoder(handle_unknown="ignore"),
    )
    features = ColumnTransformer(
        [
            (
                "numerical",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                list(NUMERICAL),
            ),
            ("categorical", encode, list(CATEGORICAL)),
        ]
    )
    return Pipeline([("features", features), ("model", LogisticRegression(max_iter=1000))])


@dataclass(frozen=True)
class Scenario:
    """A real-model scenario: each era's truth, and the champion's (unfitted) pipeline."""

    name: str
    truths: Mapping[Era, Truth]
    pipeline: Callable[[], Pipeline]
    pinned: Figures  # seed 7's figures, pinned by a test
    event_prefix: str  # of event ids, so two scenarios' events never share one
    champion_file: str  # the champion's default file name, under driftwatch-models/MODEL/


CONCEPT = Scenario(
    name="concept",
    truths={
        Era.PRE: Truth(
            means=np.array([50.0, 400.0, 3.0, 20.0]),
            weights=np.array([0.9, -0.6, 0.7, 0.4]),
            country_p=(0.4, 0.25, 0.15, 0.12, 0.08),
            country_effect=(-0.6, -0.2, 0.7, 0.3, 0.0),
            channel_p=(0.5, 0.3, 0.2),
            channel_effect=(0.4, -0.4, 0.0),
        ),
        Era.POST: Truth(
            means=np.array([80.0, 250.0, 4.5, 30.0]),
            weights=np.array([-0.7, 0.6, -0.8, 0.4]),
            country_p=(0.1, 0.15, 0.35, 0.25, 0.15),
            country_effect=(0.7, 0.3, -0.6, -0.2, 0.0),
            channel_p=(0.2, 0.3, 0.5),
            channel_effect=(-0.4, 0.4, 0.0),
        ),
    },
    pipeline=linear_pipeline,
    # Seed 7, 20,000 evaluation rows per era, refitted on 5,000 post-drift rows (the
    # champion is linear, so its refit is the linear one).
    pinned=Figures(
        champion_pre=0.8575, champion_post=0.46045, retrained_post=0.85205, linear_post=0.85205
    ),
    event_prefix="c",
    champion_file="champion.skops",
)
PINNED = CONCEPT.pinned


def draw(
    rows: int, era: Era, seed: int, block: int = 0, scenario: Scenario = CONCEPT
) -> pd.DataFrame:
    """``rows`` seeded rows of ``era``: the features as the model sees them, and the label.

    The same ``(seed, block)`` gives the same latent draws in both eras, so an
    event's index fixes its randomness and only the era decides its values.
    """
    rng = np.random.default_rng([seed, block])
    z = rng.standard_normal((rows, len(NUMERICAL)))
    u_country, u_channel, u_label = rng.random((3, rows))
    u_null = rng.random((rows, len(NULLABLE)))
    truth = scenario.truths[era]
    country = np.searchsorted(np.cumsum(truth.country_p)[:-1], u_country, side="right")
    channel = np.searchsorted(np.cumsum(truth.channel_p)[:-1], u_channel, side="right")
    score = truth.score(z, country, channel)
    label = (u_label < 1.0 / (1.0 + np.exp(-SHARPNESS * score))).astype(int)
    frame = pd.DataFrame(np.round(truth.means + _STDS * z, 4), columns=list(NUMERICAL))
    frame["country"] = np.asarray(COUNTRIES, dtype=object)[country]
    frame["channel"] = np.asarray(CHANNELS, dtype=object)[channel]
    for j, name in enumerate(NULLABLE):
        frame.loc[u_null[:, j] < NULL_SHARE, name] = None
    frame["label"] = label
    return frame


def fit(pipeline: Any, frame: pd.DataFrame) -> Any:
    """``pipeline`` fitted on ``frame``, with text classes as the reference trainer passes them."""
    return pipeline.fit(frame[list(FEATURES)], frame["label"].astype(str).to_numpy())


def train_champion(seed: int, rows: int = CHAMPION_ROWS, scenario: Scenario = CONCEPT) -> Any:
    """The champion: the scenario's pipeline fitted on pre-drift rows."""
    return fit(scenario.pipeline(), draw(rows, Era.PRE, seed, _TRAINING_BLOCK, scenario))


def champion_artifact(path: Path, seed: int, scenario: Scenario = CONCEPT) -> tuple[Any, str]:
    """The champion stored at ``path`` (trained and saved there first if absent), and its sha256."""
    if path.exists():
        sha256 = sha256_hex(read_artifact(str(path)))
        return load_model(str(path), sha256), sha256
    model = train_champion(seed, scenario=scenario)
    _, sha256 = save_model(model, str(path))
    return model, sha256


def scores(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """The model's probability of class "1" per row."""
    proba = model.predict_proba(frame[list(FEATURES)])
    positive = [str(c) for c in model.classes_].index("1")
    return np.asarray(proba[:, positive], dtype=float)


def write_reference_csv(
    path: Path,
    champion: Any,
    seed: int,
    rows: int = 20_000,
    scenario: Scenario = CONCEPT,
    kind: PredictionKind = PredictionKind.NUMERICAL,
) -> None:
    """Pre-drift rows as a reference file (features, the champion's prediction) for
    ``driftwatch reference build``; missing values are empty cells.

    The prediction is what the stream carries for ``kind``: the score, or the
    predicted class where the stream sends a class or class probabilities (a
    profile summarises those by their most probable class).
    """
    frame = draw(rows, Era.PRE, seed, _REFERENCE_BLOCK, scenario)
    prob = scores(champion, frame)
    if kind is PredictionKind.NUMERICAL:
        frame["prediction"] = np.round(prob, 5)
    else:
        frame["prediction"] = np.where(prob >= 0.5, "1", "0")
    frame[[*FEATURES, "prediction"]].to_csv(path, index=False)


def accuracy(model: Any, frame: pd.DataFrame) -> float:
    return float(np.mean((scores(model, frame) >= 0.5).astype(int) == frame["label"]))


def check_model(spec: ModelSpec) -> list[str]:
    """What keeps ``spec`` from carrying these scenarios (empty: it fits)."""
    want = {n: FeatureKind.NUMERICAL for n in NUMERICAL}
    want.update({n: FeatureKind.CATEGORICAL for n in CATEGORICAL})
    have = {f.name: f.kind for f in spec.features}
    problems = [f"feature {n!r} must be {k.value}" for n, k in want.items() if have.get(n) != k]
    problems += [f"feature {n!r} is not part of the scenario" for n in have if n not in want]
    if not problems:
        index = spec.feature_index
        problems = [f"feature {n!r} must be nullable" for n in NULLABLE if not index[n].nullable]
    return problems


def figures(
    seed: int, rows: int = 20_000, retrain_rows: int = 5_000, scenario: Scenario = CONCEPT
) -> Figures:
    """The scenario's figures for ``seed`` (the numbers its ``pinned`` quotes for seed 7)."""
    champion = train_champion(seed, scenario=scenario)
    changed = draw(retrain_rows, Era.POST, seed, _RETRAINING_BLOCK, scenario)
    post = draw(rows, Era.POST, seed, _EVALUATION_BLOCK, scenario)
    return Figures(
        accuracy(champion, draw(rows, Era.PRE, seed, _EVALUATION_BLOCK, scenario)),
        accuracy(champion, post),
        accuracy(fit(clone(champion), changed), post),
        accuracy(fit(linear_pipeline(), changed), post),
    )


def evaluation_rows(seed: int, era: Era, scenario: Scenario, rows: int = 20_000) -> pd.DataFrame:
    """Fresh rows of ``era``, those the figures score on."""
    return draw(rows, era, seed, _EVALUATION_BLOCK, scenario)


class ConceptStream:
    """Prediction and label events of the scenario, scored by the champion (a producer source)."""

    def __init__(self, plan: SyntheticPlan, champion: Any, scenario: Scenario = CONCEPT) -> None:
        self.plan = plan
        self.champion = champion
        self.scenario = scenario
        self._block = -1
        self._frames: dict[Era, pd.DataFrame] = {}
        self._rows: dict[Era, list[dict[str, Any]]] = {}
        self._scores: dict[Era, list[float]] = {}
        self._labels: dict[Era, list[int]] = {}

    def _load(self, block: int) -> None:
        for era in Era:
            frame = draw(_BLOCK, era, self.plan.seed, block, self.scenario)
            self._frames[era] = frame
            records = frame[list(FEATURES)].to_dict("records")
            # JSON has null where pandas has NaN (a missing numerical) or None.
            self._rows[era] = [{str(k): _json_value(v) for k, v in r.items()} for r in records]
            self._labels[era] = frame["label"].tolist()
        self._scores.clear()
        self._block = block

    def _serve(self, era: Era, row: int, event_id: str) -> tuple[str, float, float | None]:
        """The version that scores the event, its probability of class "1" and its
        ``latency_ms`` (None: the event carries none): here the champion under the
        plan's version, with a fixed latency (a serving layer overrides this). Scored a block at a
        time, only for the eras the stream reaches."""
        block = self._scores.get(era)
        if block is None:
            block = self._scores[era] = scores(self.champion, self._frames[era]).tolist()
        return self.plan.model_version, block[row], 2.0

    def event(self, index: int, event_time: float) -> SyntheticEvent:
        plan = self.plan
        block, row = divmod(index, _BLOCK)
        if block != self._block:
            self._load(block)
        drifted = plan.drift_at is not None and event_time >= plan.start + plan.drift_at
        era = Era.POST if drifted else Era.PRE
        event_id = f"{self.scenario.event_prefix}{plan.seed:03x}-{index:012d}"
        version, prob, latency_ms = self._serve(era, row, event_id)
        stamp = datetime.fromtimestamp(event_time, UTC).isoformat().replace("+00:00", "Z")
        pred = {
            "event_id": event_id,
            "model": plan.model.name,
            "model_version": version,
            "timestamp": stamp,
            "features": self._rows[era][row],
            "prediction": _prediction(plan.model.prediction.kind, prob),
            "latency_ms": latency_ms,
        }
        label = {"event_id": event_id, "model": plan.model.name, "label": self._labels[era][row]}
        label["timestamp"] = stamp
        return SyntheticEvent(
            event_id.encode(), msgspec.json.encode(pred), msgspec.json.encode(label), event_time
        )


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _prediction(kind: PredictionKind, prob: float) -> Any:
    if kind is PredictionKind.NUMERICAL:
        return round(prob, 5)
    if kind is PredictionKind.CATEGORICAL:
        return "1" if prob >= 0.5 else "0"
    return [round(1 - prob, 5), round(prob, 5)]


def concept_streams(
    plans: Sequence[SyntheticPlan], champion: str | None, scenario: Scenario = CONCEPT
) -> list[ConceptStream]:
    """The scenario's streams for ``produce-demo``: one champion per model, trained once."""
    problems = [f"models.{p.model.name}: {msg}" for p in plans for msg in check_model(p.model)]
    if problems:
        head = f"--scenario {scenario.name} needs the features of the demo's fraud model:"
        raise ConfigError([head, *problems])
    streams: list[ConceptStream] = []
    for plan in plans:
        path = Path(champion or f"driftwatch-models/{plan.model.name}/{scenario.champion_file}")
        model, sha256 = champion_artifact(path, plan.seed, scenario)
        print(f"champion of {plan.model.name}: {path} sha256 {sha256}")
        streams.append(ConceptStream(plan, model, scenario))
    return streams
