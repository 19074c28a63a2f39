"""Page-Hinkley: a cumulative-sum test for a shift in the mean of a stream."""

from __future__ import annotations

import math
from typing import Any, Literal, Self, cast

from drift.detectors.base import DetectorBase

Mode = Literal["up", "down", "both"]
_MODES: tuple[Mode, ...] = ("up", "down", "both")


class PageHinkley(DetectorBase):
    """Page-Hinkley test: a sustained shift of the mean, by default upwards.

    With ``x̄_t`` the mean of the values since the last drift, the test
    accumulates ``m_t = alpha * m_(t-1) + (x_t - x̄_t - delta)`` and reports a
    drift when ``m_t - min(m)`` exceeds ``threshold``: values that keep landing
    above the mean by more than the tolerance ``delta`` pile up. Mode
    ``"down"`` mirrors it (``x̄_t - x_t - delta``, against the maximum) and
    ``"both"`` runs the two. After a drift the statistics start over. The
    fading factor ``alpha`` (Gama, Sebastião and Rodrigues, 2013) makes the sum
    forget old deviations; on long stationary streams it is also the source of
    the test's false alarms (below).

    Parameters
    ----------
    min_instances
        Values after each (re)start before a drift can be reported. Default 30
        (River's ``min_instances``).
    delta
        Tolerated deviation from the mean per value. Default 0.005 (River).
    threshold
        The lambda of the test: the cumulative deviation that is a drift.
        Default 50 (River).
    alpha
        Fading factor of the cumulative sum. Default ``1 - 0.0001`` (River).
    mode
        ``"up"`` (default), ``"down"`` or ``"both"``. River's default is
        ``"both"``; here the input is an error rate, where only a rise matters.

    Measured at the defaults by ``tests/unit/drift/detectors/test_page_hinkley.py``:

    * detection delay: the error rate doubles from 0.10 to 0.20 after 5,000
      events at 0.10; over seeds 0-19 the drift is reported a median 470.5 and
      at most 736 events later.
    * false alarms: 11 on five stationary Bernoulli(0.1) streams of 100,000
      events (2.2 per 100,000; 2, 2, 3, 2, 2 by seed), spread over the streams.
      They come from the fading: the faded sum hovers near
      ``-delta / (1 - alpha) = -50`` while its running minimum keeps sinking
      with every unusually long good spell, until a bad one spans the gap.

    Examples
    --------
    The error rate doubles at event 5,000.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> errors = np.concatenate([rng.random(5_000) < 0.1, rng.random(2_000) < 0.2]).tolist()
    >>> ph = PageHinkley()
    >>> drifts = []
    >>> for i, error in enumerate(errors):
    ...     ph.update(error)
    ...     if ph.drift_detected:
    ...         drifts.append(i)
    >>> drifts
    [5557]

    References
    ----------
    Page, E. S. (1954). Continuous Inspection Schemes. Biometrika 41(1/2),
    100-115.

    Hinkley, D. V. (1971). Inference about the change-point from cumulative sum
    tests. Biometrika 58(3), 509-523.

    Gama, J., Sebastião, R. and Rodrigues, P. P. (2013). On evaluating stream
    learning algorithms. Machine Learning 90(3), 317-346.
    """

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: Mode = "up",
    ) -> None:
        if min_instances < 1:
            raise ValueError(f"min_instances must be at least 1, got {min_instances}")
        if delta < 0:
            raise ValueError(f"delta must be non-negative, got {delta}")
        if threshold <= 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode: Mode = mode
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._restart()

    def _restart(self) -> None:
        self._count = 0
        self._mean = 0.0
        # Sums start at 0, the empty sum, so the extremes are never infinite.
        self._sum_up = 0.0
        self._min_up = 0.0
        self._sum_down = 0.0
        self._max_down = 0.0

    @property
    def warning_detected(self) -> bool:
        """Always ``False``: Page-Hinkley has no warning zone."""
        return False

    @property
    def estimation(self) -> float:
        """Mean of the values since the last drift (0.0 before any)."""
        return self._mean

    def update(self, x: float) -> None:
        """Add one finite value."""
        if not math.isfinite(x):
            raise ValueError(f"PageHinkley takes finite values, got {x!r}")
        value = float(x)
        self._n += 1
        self._count += 1
        self._mean += (value - self._mean) / self._count
        dev = value - self._mean
        drift = False
        if self.mode != "down":
            self._sum_up = self.alpha * self._sum_up + dev - self.delta
            self._min_up = min(self._min_up, self._sum_up)
            drift = self._sum_up - self._min_up > self.threshold
        if self.mode != "up":
            self._sum_down = self.alpha * self._sum_down + dev + self.delta
            self._max_down = max(self._max_down, self._sum_down)
            drift = drift or self._max_down - self._sum_down > self.threshold
        self._drift = drift and self._count >= self.min_instances
        if self._drift:
            self._restart()

    def to_state(self) -> dict[str, Any]:
        """Parameters and statistics as JSON-safe values."""
        return {
            "min_instances": self.min_instances,
            "delta": self.delta,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "mode": self.mode,
            "n": self._n,
            "drift": self._drift,
            "count": self._count,
            "mean": self._mean,
            "sum_up": self._sum_up,
            "min_up": self._min_up,
            "sum_down": self._sum_down,
            "max_down": self._max_down,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """The detector that :meth:`to_state` described."""
        try:
            det = cls(
                state["min_instances"],
                state["delta"],
                state["threshold"],
                state["alpha"],
                cast(Mode, state["mode"]),
            )
            det._n = int(state["n"])
            det._drift = bool(state["drift"])
            det._count = int(state["count"])
            det._mean = float(state["mean"])
            det._sum_up = float(state["sum_up"])
            det._min_up = float(state["min_up"])
            det._sum_down = float(state["sum_down"])
            det._max_down = float(state["max_down"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a PageHinkley state: {exc!r}") from exc
        return det
