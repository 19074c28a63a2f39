"""Two-sample drift statistics on sketches, histograms and exact values.

One module per family: :mod:`~drift.stats.numerical` (Kolmogorov-Smirnov,
normed Wasserstein, PSI, Jensen-Shannon, KL, Hellinger on histograms),
:mod:`~drift.stats.categorical` (chi-square, Z-test, Jensen-Shannon, PSI, KL,
Hellinger on value counts) and :mod:`~drift.stats.correction`
(Benjamini-Hochberg). Every function is pure and takes plain arrays or
mappings.

:class:`Method` names the tests as Evidently does, with each test's default
threshold and the direction of its decision:

>>> Method("wasserstein").default_threshold, Method.KS.is_p_value
(0.1, True)
>>> Method.KS.drifted(0.05, 0.05), Method.CHI_SQUARE.drifted(0.05, 0.05)
(True, False)
"""

from __future__ import annotations

from enum import StrEnum


class Method(StrEnum):
    KS = "ks"
    WASSERSTEIN = "wasserstein"
    PSI = "psi"
    JENSEN_SHANNON = "jensenshannon"
    KL_DIV = "kl_div"
    HELLINGER = "hellinger"
    CHI_SQUARE = "chisquare"
    Z = "z"

    @property
    def is_p_value(self) -> bool:
        return self in _P_VALUE

    @property
    def default_threshold(self) -> float:
        return 0.05 if self.is_p_value else 0.1

    def drifted(self, value: float, threshold: float) -> bool:
        """The verdict for a p-value or distance ``value`` at ``threshold``.

        Evidently's KS drifts at ``p <= threshold`` but chi-square and Z only
        at ``p < threshold``; distances drift at ``value >= threshold``.
        """
        if self is Method.KS:
            return value <= threshold
        if self.is_p_value:
            return value < threshold
        return value >= threshold


_P_VALUE = frozenset({Method.KS, Method.CHI_SQUARE, Method.Z})
# Here, not beside the comparisons in drift.compare, so that configuration can check
# it without importing the tests (SciPy).
NUMERICAL_ONLY = frozenset({Method.KS, Method.WASSERSTEIN})
