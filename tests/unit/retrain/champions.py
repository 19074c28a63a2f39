"""A user's own champion: a scikit-learn pipeline made of types beyond the reference
trainer's (:data:`retrain.artifacts.TRUSTED_TYPES`), fitted on the concept scenario."""

from __future__ import annotations

from pathlib import Path

from retrain.artifacts import TRUSTED_TYPES, artifact_types, read_artifact, save_model
from service.dev.concept import CATEGORICAL, NUMERICAL, Era, draw

# What the forest pipeline names beyond the defaults (pinned: a test says so). Its
# passthrough FunctionTransformer is trusted: the trainer's default pipeline has one too.
FOREST_TYPES = (
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
)


def forest_champion(path: Path, seed: int = 7) -> tuple[str, str]:
    """A random forest behind a ``ColumnTransformer`` with a passthrough remainder,
    fitted on pre-drift rows and saved at ``path``: (uri, sha256)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = draw(2000, Era.PRE, seed, block=3)
    encode = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL))],
        remainder="passthrough",
    )
    # A fixed integer seed: a numpy Generator would be one more type to trust.
    forest = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0)
    model = Pipeline([("encode", encode), ("forest", forest)])
    model.fit(frame[[*NUMERICAL, *CATEGORICAL]], frame["label"].astype(str))
    uri, sha256 = save_model(model, str(path))
    assert sorted(artifact_types(read_artifact(uri)) - TRUSTED_TYPES) == list(FOREST_TYPES)
    return uri, sha256
