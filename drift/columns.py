"""Reading column data: numpy arrays, lists, or columns of a data frame.

Nothing here imports pandas. A data frame is anything with ``columns`` and
``frame[name]``; a column is anything ``np.asarray`` understands, and when it
also has ``to_numpy`` / ``value_counts`` (a pandas Series) those faster paths
are used. Nulls are ``None``, NaN, ``pd.NA`` or ``NaT``; numerical infinities
count as missing too, as Evidently drops them before testing.

Column kinds are inferred as Evidently 0.7 does by default
(``evidently.core.datasets.infer_column_type``): floats are numerical,
integers numerical only with more than 10 distinct values, booleans, strings
and categories categorical, date-times not monitored.

>>> [str(infer_kind(c)) for c in (np.array([0.5, 1.5]), np.arange(3), np.arange(11))]
['numerical', 'categorical', 'numerical']
>>> counts, nulls = category_counts(["a", None, "b", "a", float("nan"), 1])
>>> sorted(counts.items()), nulls
([('1', 1), ('a', 2), ('b', 1)], 2)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drift.schema import FeatureKind

FloatArray = npt.NDArray[np.float64]

# Evidently's INTEGER_CARDINALITY_LIMIT: integer columns with at most this many
# distinct values are categorical.
INTEGER_CARDINALITY_LIMIT = 10


def is_null(value: object) -> bool:
    """None, a float NaN, or pandas' NA / NaT (recognised without importing pandas)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def category_key(value: object) -> str:
    """The text a category is kept as, the same as :class:`drift.sketch.CategoricalSketch`."""
    return value if type(value) is str else str(value)


def raw_array(column: Any) -> np.ndarray[Any, Any]:
    to_numpy = getattr(column, "to_numpy", None)
    if to_numpy is not None:
        return np.asarray(to_numpy())
    return np.asarray(column)


def numeric_values(column: Any) -> FloatArray:
    """The column as float64, nulls as NaN."""
    arr = raw_array(column)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64, copy=False)
    # Object columns (lists with None, pandas nullable dtypes) go element by element.
    return np.array([math.nan if is_null(v) else float(v) for v in arr.tolist()], np.float64)


@dataclass(frozen=True, slots=True)
class NumericScan:
    """The finite values of a numerical column, the number missing, and their moments."""

    values: FloatArray
    nulls: int
    total: float = 0.0
    total_sq: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    @property
    def count(self) -> int:
        return int(self.values.size)

    def std(self) -> float:
        """Population standard deviation, from the moment sums when they are accurate."""
        n = self.values.size
        if n == 0:
            return 0.0
        mean = self.total / n
        variance = self.total_sq / n - mean * mean
        # Moment sums lose about eps * mean^2 / variance relative precision to cancellation.
        if math.isfinite(variance) and variance > 0 and mean * mean < 1e6 * variance:
            return math.sqrt(variance)
        centred = self.values - mean
        return math.sqrt(float(np.dot(centred, centred)) / n)


def scan_numeric(column: Any) -> NumericScan:
    """Read a numerical column once: finite values, missing count, sums and extremes."""
    x = numeric_values(column)
    size = x.size
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: the check below
        total = float(x.sum())
    # A finite sum proves every value finite, which spares a pass over clean columns.
    if not math.isfinite(total):
        x = x[np.isfinite(x)]
        total = float(x.sum())
    if x.size == 0:
        return NumericScan(x, size)
    return NumericScan(x, size - x.size, total, float(np.dot(x, x)), float(x.min()), float(x.max()))


def category_counts(column: Any) -> tuple[Counter[str], int]:
    """Counts of each category (as text) and the number of nulls."""
    pairs = _pandas_counts(column)
    if pairs is None:
        if isinstance(column, np.ndarray) and column.dtype.kind in "fiub":
            pairs = _numpy_counts(column)
        else:
            values = column.tolist() if isinstance(column, np.ndarray) else list(column)
            counted = Counter(values)
            if any(type(k) is not str for k in counted):
                # True == 1 in a Counter, so non-strings are turned to text before counting.
                counted = Counter(None if is_null(v) else category_key(v) for v in values)
            pairs = list(counted.items())
    counts: Counter[str] = Counter()
    nulls = 0
    for value, n in pairs:
        if is_null(value):
            nulls += int(n)
        else:
            counts[category_key(value)] += int(n)
    return counts, nulls


def _pandas_counts(column: Any) -> list[tuple[object, int]] | None:
    """A pandas Series' own hash-based count (several times faster than a Counter)."""
    value_counts = getattr(column, "value_counts", None)
    if value_counts is None:
        return None
    try:
        return list(value_counts(dropna=False, sort=False).items())
    except TypeError:  # a value_counts with another signature: not pandas
        return None


def _numpy_counts(arr: np.ndarray[Any, Any]) -> list[tuple[object, int]]:
    if arr.dtype.kind == "f":
        missing = np.isnan(arr)
        present = arr[~missing]
        values, counts = np.unique(present, return_counts=True)
        pairs: list[tuple[object, int]] = list(zip(values.tolist(), counts.tolist(), strict=True))
        return [*pairs, (None, int(missing.sum()))]
    values, counts = np.unique(arr, return_counts=True)
    return list(zip(values.tolist(), counts.tolist(), strict=True))


def category_sample(column: Any, rows: npt.NDArray[np.intp] | None) -> tuple[str, ...]:
    """The non-null categories at ``rows`` (every row when None), as text."""
    arr = raw_array(column) if not isinstance(column, list) else np.array(column, dtype=object)
    values = (arr if rows is None else arr[rows]).tolist()
    if set(map(type, values)) == {str}:  # the common case, checked without a Python loop
        return tuple(values)
    return tuple(category_key(v) for v in values if not is_null(v))


def infer_kind(column: Any) -> FeatureKind | None:
    """The kind Evidently 0.7 would give the column, or None for a column it skips."""
    dtype = getattr(column, "dtype", None)
    if dtype is None:
        dtype = np.asarray(column).dtype
    if str(dtype) == "category":
        return FeatureKind.CATEGORICAL
    kind = getattr(dtype, "kind", "O")
    if kind == "f":
        return FeatureKind.NUMERICAL
    if kind in "iu":
        many = _more_distinct_than(scan_numeric(column).values, INTEGER_CARDINALITY_LIMIT)
        return FeatureKind.NUMERICAL if many else FeatureKind.CATEGORICAL
    if kind in "bOUS":
        return FeatureKind.CATEGORICAL
    return None


def _more_distinct_than(x: FloatArray, limit: int) -> bool:
    # Most columns reveal their cardinality in a prefix; a full sort is the fallback.
    head = np.unique(x[:4096])
    if head.size > limit:
        return True
    if bool(np.isin(x, head).all()):
        return False
    return bool(np.unique(x).size > limit)
