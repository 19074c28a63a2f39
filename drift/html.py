"""Evidently 0.7 drift reports as HTML, for people to read.

driftwatch's verdicts (the rows in SQL, the alerts, the retraining triggers)
come from :func:`drift.evaluate.evaluate` on mergeable sketches and a
reference profile. People, though, know how to read Evidently's
DataDriftPreset report, so the latest window's report is also kept as HTML.
Rendering it is separate from evaluation, and runs off the hot path:

- Evidently is slow. Importing it takes seconds, and each run tests every
  column again from rows and writes several megabytes of HTML (its
  JavaScript bundle is inlined). None of that belongs on the path that closes
  a window.
- Evidently needs reference rows, and driftwatch keeps only a profile. So
  :func:`reference_frame` rebuilds the reference from the profile's samples.
  This is a sample (see that function for what it keeps and what it loses),
  so the HTML illustrates the window and is not its record. Where the two
  disagree, the verdicts in SQL stand.
- To keep the two close, :func:`render_drift_html` declares each column's
  kind, so Evidently does not infer kinds again. It also takes the stored
  report's per-column tests and thresholds (:func:`stored_tests`), so
  Evidently runs the tests that driftwatch ran.

pandas and Evidently are imported inside the functions, so ``import drift``
stays light. Rendering reads the JavaScript and font that Evidently ships in
its package; this is the only file read in :mod:`drift`. The HTML is not
reproducible byte for byte, because Evidently gives every page and widget a
fresh random id. It is stored gzip-compressed (:func:`compress_html`).

>>> profile = ReferenceProfile.from_columns(
...     {"x": [0.5, None, 2.5, 1.5], "c": ["a", "b", None, "a"]},
...     {"x": "numerical", "c": "categorical"},
... )
>>> frame = reference_frame(profile)
>>> frame.shape, sorted(frame["x"].dropna()), sorted(frame["c"].dropna())
((4, 2), [0.5, 1.5, 2.5], ['a', 'a', 'b'])
>>> decompress_html(compress_html("<p>drift</p>"))
'<p>drift</p>'
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from drift import columns as col
from drift.profile import FeatureProfile, NumericalProfile, ReferenceProfile
from drift.report import DriftReport
from drift.schema import FeatureKind
from drift.stats import NUMERICAL_ONLY, Method

if TYPE_CHECKING:
    import pandas as pd

# Tests that Evidently 0.7 registers for categorical columns only. driftwatch
# also runs them on numerical features with few distinct values (Evidently's
# own default choice for those, which it does not accept by name).
CATEGORICAL_ONLY = frozenset({Method.CHI_SQUARE, Method.Z})

# The snapshot's timestamp appears in neither its HTML nor its dict. Passing a
# fixed one stops Evidently reading the clock inside drift/.
_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)


def reference_frame(
    profile: ReferenceProfile, *, rows: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """A data frame that stands for the reference, rebuilt from the profile's samples.

    Parameters
    ----------
    profile
        The reference profile. Its features become the columns, in order.
    rows
        Length of the frame. By default this is the reference's own length
        when the profile holds every value (at most ``sample_size`` rows).
        Otherwise it is the longest sample.
    seed
        Seeds the row order and the draws. Each column is seeded by its own
        name, so a column does not depend on the other columns.

    Each column has the profile's null share, rounded to whole rows. Nulls
    are NaN in numerical columns and None in categorical ones. The other rows
    are the sample's values in a random order: a random subset when the
    sample is longer than needed, and when it is shorter, every sample value
    plus draws with replacement from the sample.

    What is faithful:

    - Each column's distribution is a uniform sample of the reference
      column's values, with the reference's null share.
    - If the reference had at most ``sample_size`` rows, the profile holds
      every value and (with ``rows`` left to default) each column *is* the
      reference column, with its rows shuffled.

    What is not:

    - Rows are not rows. Each column is shuffled on its own, so any relation
      between features is gone. DataDriftPreset tests one column at a time,
      but do not use the frame for anything that looks across columns.
    - It is a sample. Evidently's default test depends on the reference's
      size (more than 1000 non-null values: Wasserstein or Jensen-Shannon
      distance instead of a p-value test) and on the number of distinct
      values. With a sample smaller than the true reference, or one that
      misses rare values, Evidently can choose a different test from the one
      driftwatch chose. Pass the stored report's tests to
      :func:`render_drift_html` (see :func:`stored_tests`).
    - Even with the same test the scores differ. A sample has fewer rows than
      the reference, so p-values are weaker. Extremes and categories rarer
      than about one in ``sample_size`` may be missing, and Evidently would
      show those categories as new in the current window. The
      normalisations (the Wasserstein distance's standard deviation) and the
      bins come from the sample.
    - Draws with replacement (a ``rows`` longer than the sample) repeat
      values. That makes p-values stronger than the data justifies.
    """
    import pandas as pd

    if rows is not None and rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    n = _default_rows(profile) if rows is None else rows
    data = {
        name: _column(feature, n, np.random.default_rng([seed, zlib.crc32(name.encode())]))
        for name, feature in profile.features.items()
    }
    return pd.DataFrame(data, columns=list(profile.features))


def drift_snapshot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    kinds: Mapping[str, FeatureKind | str],
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
) -> Any:
    """Run Evidently's DataDriftPreset, with its tests, and return the snapshot.

    The arguments are those of :func:`render_drift_html`. The result is an
    ``evidently.core.report.Snapshot``, and its ``dict()`` holds the metrics
    and tests.
    """
    resolved = {name: FeatureKind(kind) for name, kind in kinds.items()}
    if not resolved:
        raise ValueError("kinds names no feature")
    if not 0 < drift_share <= 1:
        raise ValueError(f"drift_share must be in (0, 1], got {drift_share}")
    per_method = _per_column_methods(resolved, methods or {})
    per_threshold = _per_column_thresholds(resolved, thresholds or {})
    ref = _prepared(reference, resolved, "reference")
    cur = _prepared(current, resolved, "current")
    with warnings.catch_warnings():
        # Evidently's imports warn about numpy and litestar deprecations, and its
        # tests about divisions by zero in empty bins. Callers can do nothing about either.
        warnings.simplefilter("ignore")
        from evidently import Report  # type: ignore[import-untyped, unused-ignore]
        from evidently.presets import DataDriftPreset  # type: ignore[import-untyped, unused-ignore]

        preset = DataDriftPreset(
            columns=list(resolved),
            drift_share=drift_share,
            per_column_method=per_method or None,
            per_column_threshold=per_threshold or None,
        )
        report = Report([preset], include_tests=True)
        return report.run(_dataset(cur, resolved), _dataset(ref, resolved), timestamp=_TIMESTAMP)


def render_drift_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    kinds: Mapping[str, FeatureKind | str],
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    title: str | None = None,
) -> str:
    """Evidently's DataDriftPreset report of ``current`` against ``reference``, as a page.

    Parameters
    ----------
    reference, current
        Data frames holding at least the columns named in ``kinds``. Other
        columns are ignored. Usually ``reference`` is :func:`reference_frame`.
    kinds
        The kind of each feature to test. Evidently is told these kinds and
        does not infer them. Categorical values are compared as text, as
        driftwatch compares them (``1`` and ``"1"`` are one category).
    methods, thresholds
        Per-feature Evidently stattest name (``"psi"``, ``"ks"``, ...) and
        threshold. Features left out get Evidently's default. Chi-square and
        Z for a numerical feature are left to Evidently's default, because
        Evidently takes them by name only for categorical columns. Its
        default picks them for the features where driftwatch's default does
        (at most 1000 reference values, at most 5 distinct values).
    drift_share
        Share of drifted features at which the data set counts as drifted.
    title
        The page's ``<title>``. Without one, the page has no title.

    Returns
    -------
    str
        A standalone HTML page. Evidently's script and font are inlined, so
        the page is a few megabytes.
    """
    snapshot = drift_snapshot(
        reference,
        current,
        kinds=kinds,
        methods=methods,
        thresholds=thresholds,
        drift_share=drift_share,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page: str = snapshot.get_html_str(as_iframe=False)
    if title is not None:
        page = page.replace("<head>", f"<head>\n<title>{escape(title)}</title>", 1)
    return page


def stored_tests(report: DriftReport) -> tuple[dict[str, str], dict[str, float]]:
    """The tests and thresholds behind a stored report, for :func:`render_drift_html`.

    Features without a verdict (too little data) are left out. With
    Benjamini-Hochberg correction, driftwatch compared adjusted p-values with
    the thresholds. Evidently compares raw ones, so its verdicts can differ.
    """
    methods = {f.name: str(f.method) for f in report.features if f.method is not None}
    thresholds = {f.name: f.threshold for f in report.features if f.threshold is not None}
    return methods, thresholds


def compress_html(html: str) -> bytes:
    """Gzip a page for storage. Evidently's pages shrink about threefold."""
    return gzip.compress(html.encode("utf-8"), compresslevel=6, mtime=0)


def decompress_html(data: bytes) -> str:
    """The page stored by :func:`compress_html`."""
    return gzip.decompress(data).decode("utf-8")


def _default_rows(profile: ReferenceProfile) -> int:
    if profile.rows <= profile.sample_size:
        # Every value was kept, so each column can be the reference's own.
        return profile.rows
    # Each numerical sample holds sample_size values, or all of a column's
    # values. Each categorical sample holds the non-null values of sample_size
    # rows. Neither runs short of the non-null rows in a frame this long.
    return max((len(f.sample) for f in profile.features.values()), default=0)


def _column(feature: FeatureProfile, n: int, rng: np.random.Generator) -> npt.NDArray[Any]:
    sample: npt.NDArray[Any]
    null: object
    if isinstance(feature, NumericalProfile):
        sample, null = feature.sample, np.nan
    else:
        sample, null = np.array(feature.sample, dtype=object), None
    nulls = n if sample.size == 0 else _null_rows(feature.nulls, feature.count, n)
    values = sample[_picks(sample.size, n - nulls, rng)]
    filler = np.full(nulls, null, dtype=sample.dtype)
    return rng.permutation(np.concatenate((values, filler)))


def _null_rows(nulls: int, count: int, n: int) -> int:
    """The profile's null share of ``n`` rows, rounded half up."""
    total = nulls + count
    return (2 * n * nulls + total) // (2 * total)


def _picks(size: int, k: int, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    """``k`` positions in a sample of ``size``: distinct while it lasts, then drawn again."""
    if k <= size:
        return rng.permutation(size)[:k]
    extra = rng.integers(0, size, k - size)
    return np.concatenate((np.arange(size), extra)).astype(np.intp)


def _per_column_methods(
    kinds: Mapping[str, FeatureKind], methods: Mapping[str, str]
) -> dict[str, str]:
    _check_names(kinds, methods, "methods")
    chosen: dict[str, str] = {}
    for name, given in methods.items():
        try:
            method = Method(given)
        except ValueError:
            raise ValueError(f"unknown method {given!r} for feature {name!r}") from None
        if kinds[name] is FeatureKind.CATEGORICAL and method in NUMERICAL_ONLY:
            raise ValueError(f"method {method} applies to numerical features only, not {name!r}")
        if kinds[name] is FeatureKind.NUMERICAL and method in CATEGORICAL_ONLY:
            continue
        chosen[name] = str(method)
    return chosen


def _per_column_thresholds(
    kinds: Mapping[str, FeatureKind], thresholds: Mapping[str, float]
) -> dict[str, float]:
    _check_names(kinds, thresholds, "thresholds")
    return {name: float(t) for name, t in thresholds.items()}


def _check_names(kinds: Mapping[str, FeatureKind], given: Mapping[str, object], what: str) -> None:
    unknown = sorted(set(given) - set(kinds))
    if unknown:
        raise ValueError(f"{what} name features not in kinds: {unknown}")


def _prepared(frame: pd.DataFrame, kinds: Mapping[str, FeatureKind], what: str) -> pd.DataFrame:
    """The features of ``frame`` as driftwatch reads them: floats, or text and None."""
    import pandas as pd

    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        raise ValueError(f"the {what} frame lacks features {missing}")
    if len(frame) == 0:
        raise ValueError(f"the {what} frame has no rows")
    data: dict[str, npt.NDArray[Any]] = {}
    for name, kind in kinds.items():
        column = frame[name]
        if kind is FeatureKind.NUMERICAL:
            data[name] = col.numeric_values(column)
        else:
            text = [None if col.is_null(v) else col.category_key(v) for v in column.tolist()]
            data[name] = np.array(text, dtype=object)
    return pd.DataFrame(data, columns=list(kinds))


def _dataset(frame: pd.DataFrame, kinds: Mapping[str, FeatureKind]) -> Any:
    """An Evidently dataset whose column kinds are all given, so none is inferred."""
    from evidently import DataDefinition, Dataset  # type: ignore[import-untyped, unused-ignore]

    definition = DataDefinition(
        numerical_columns=[n for n, k in kinds.items() if k is FeatureKind.NUMERICAL],
        categorical_columns=[n for n, k in kinds.items() if k is FeatureKind.CATEGORICAL],
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )
    return Dataset.from_pandas(frame, data_definition=definition)
