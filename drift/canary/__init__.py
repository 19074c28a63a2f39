"""The statistics of a canary analysis: canary against stable, over the same span.

Every check is a pure function of the two versions' totals or samples and
returns a :class:`Check` with one of three outcomes; *inconclusive* means
"too little evidence either way" (the rollout holds), never a coin flip:

- :func:`accuracy_noninferiority` and :func:`error_noninferiority`
  (:mod:`~drift.canary.noninferiority`): is the canary worse than stable by
  more than a margin? One-sided, with the sample sizes
  (:func:`proportion_sample_size`, :func:`mean_sample_size`) and the exact
  pass/fail probabilities (:func:`operating_characteristic`) it implies;
- :func:`sample_ratio` (:mod:`~drift.canary.split`): does the canary get the
  share of events the router was told to send it?
- :func:`prediction_divergence` (:mod:`~drift.canary.divergence`):
  Jensen-Shannon distance of the two prediction histograms;
- :func:`latency_ratio` (:mod:`~drift.canary.latency`): a latency percentile
  of the canary over stable's, from their
  :class:`~drift.latency_sketch.LatencySketch`.

>>> from drift.canary import accuracy_noninferiority, prediction_divergence, sample_ratio
>>> checks = [
...     accuracy_noninferiority(1880, 2000, 1870, 2000, margin=0.02),
...     sample_ratio(18_000, 2_000, 0.1),
...     prediction_divergence([900, 1100], [9100, 10900]),
... ]
>>> [str(c.outcome) for c in checks]
['pass', 'pass', 'pass']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from drift.canary.check import Check, Outcome

if TYPE_CHECKING:
    from drift.canary.divergence import js_distance, null_distance, prediction_divergence
    from drift.canary.latency import latency_ratio, quantile_bounds
    from drift.canary.noninferiority import (
        accuracy_noninferiority,
        error_noninferiority,
        mean_sample_size,
        newcombe_interval,
        operating_characteristic,
        proportion_sample_size,
        welch_interval,
        wilson_interval,
    )
    from drift.canary.split import sample_ratio, srm_p_value

# The checks need SciPy; Check and Outcome do not, and the SQL tables that store
# analyses import them, which would otherwise load SciPy into every process that opens
# the database (the ingestion process among them). The checks load on first use.
_CHECKS = {
    "divergence": ("js_distance", "null_distance", "prediction_divergence"),
    "latency": ("latency_ratio", "quantile_bounds"),
    "noninferiority": (
        "accuracy_noninferiority",
        "error_noninferiority",
        "mean_sample_size",
        "newcombe_interval",
        "operating_characteristic",
        "proportion_sample_size",
        "welch_interval",
        "wilson_interval",
    ),
    "split": ("sample_ratio", "srm_p_value"),
}
_MODULE_OF = {name: module for module, names in _CHECKS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Check",
    "Outcome",
    "accuracy_noninferiority",
    "error_noninferiority",
    "js_distance",
    "latency_ratio",
    "mean_sample_size",
    "newcombe_interval",
    "null_distance",
    "operating_characteristic",
    "prediction_divergence",
    "proportion_sample_size",
    "quantile_bounds",
    "sample_ratio",
    "srm_p_value",
    "welch_interval",
    "wilson_interval",
]
