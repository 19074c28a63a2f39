"""Model artifacts: skops files behind a path, ``s3://`` or any fsspec URI, by sha256.

A model file is untrusted input: pickle would run whatever code it names, so
artifacts are skops files, and loading one goes in three checks before any
object is built: the bytes must have the sha256 the registry recorded, every
type the file names must be on an explicit list (the reference trainer's
pipelines, :data:`TRUSTED_TYPES`, plus what a caller adds), and skops' own
audit must pass with exactly those types. Anything else is refused with an
:class:`~retrain.errors.ArtifactError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import skops.io as sio

from retrain.errors import ArtifactError
from retrain.storage import filesystem

# Every type the reference trainer's default is made of (retrain/trainer/estimators.py:
# gradient boosting for regression, two and more classes) and the linear champion of the
# concept demo (service/dev/concept.py): what their skops files name, nothing more, and
# Ridge, which earlier reference trainers fitted for regression, so that those models still
# load as champions. The partial of check_array is histogram gradient boosting's own input
# check; a partial of any other function is still refused: that function is not listed.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.bool",
        "builtins.dict",
        "builtins.float",
        "builtins.int",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "functools.partial",
        "numpy.dtype",
        "numpy.float64",
        "numpy.int64",
        "numpy.ndarray",
        "numpy.random._generator.Generator",
        "numpy.uint64",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.utils.validation.check_array",
    }
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump_model(model: Any) -> bytes:
    """The skops bytes of ``model``."""
    try:
        data: bytes = sio.dumps(model)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise ArtifactError(f"cannot serialise {type(model).__name__} with skops: {exc}") from exc
    return data


def save_model(
    model: Any, uri: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[str, str]:
    """Write ``model`` to ``uri`` as a skops file; return ``(uri, sha256)``."""
    data = dump_model(model)
    try:
        fs, path = filesystem(uri, storage_options)
        parent = fs._parent(path)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        fs.pipe_file(path, data)
    except (OSError, ValueError, ImportError, pa.ArrowException) as exc:
        raise ArtifactError(f"cannot write the artifact {uri}: {exc}") from exc
    return uri, sha256_hex(data)


def read_artifact(uri: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    try:
        fs, path = filesystem(uri, storage_options)
        data: bytes = fs.cat_file(path)
    except (OSError, ValueError, ImportError, pa.ArrowException) as exc:
        raise ArtifactError(f"cannot read the artifact {uri}: {exc}") from exc
    return data


def artifact_types(data: bytes) -> set[str]:
    """Every ``module.Class`` a skops file names, read from its schema without loading it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtifactError(f"not a skops file: {exc}") from exc
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node and "__module__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_bytes(data: bytes, source: str, extra_trusted: Iterable[str] = ()) -> Any:
    """Build the model in ``data`` if it names only trusted types."""
    allowed = TRUSTED_TYPES | set(extra_trusted)
    refused = sorted(artifact_types(data) - allowed)
    if refused:
        raise ArtifactError(f"{source} holds types that are not trusted: {', '.join(refused)}")
    try:
        untrusted = sio.get_untrusted_types(data=data)
        if set(untrusted) - allowed:  # the schema walk above missed a type: refuse as well
            raise ArtifactError(f"{source} holds types that are not trusted: {untrusted}")
        return sio.loads(data, trusted=untrusted)
    except ArtifactError:
        raise
    except Exception as exc:  # skops raises many kinds on a damaged file; all mean "refused"
        raise ArtifactError(f"cannot load {source}: {type(exc).__name__}: {exc}") from exc


def load_model(
    uri: str,
    sha256: str,
    extra_trusted: Iterable[str] = (),
    storage_options: Mapping[str, Any] | None = None,
) -> Any:
    """Load the model at ``uri`` after checking that its bytes have the given sha256."""
    data = read_artifact(uri, storage_options)
    if sha256_hex(data) != sha256.lower():
        raise ArtifactError(f"sha256 mismatch for {uri}")
    return load_bytes(data, uri, extra_trusted)
