"""The default alarm rule: when a model's error stream is said to have drifted."""

from __future__ import annotations

from typing import Any, Self

from drift.detectors.adwin import ADWIN
from drift.detectors.base import DetectorBase


class AlarmRule(DetectorBase):
    """Concept drift = a significant and material rise of the error rate.

    The rule feeds each per-event error (0/1, or a loss in [0, 1]) to an
    :class:`~drift.detectors.adwin.ADWIN` and raises an alarm when all of
    these hold:

    1. ADWIN cuts its window: some split into older and newer values has means
       further apart than its ``eps_cut``, i.e. a change significant at
       confidence ``delta``;
    2. at the strongest such split (:attr:`ADWIN.last_split`) the newer mean
       is *higher*: a falling error rate is good news, not an alert;
    3. and higher by at least ``min_increase`` in absolute terms, so that the
       tiny shifts a window of millions of events can prove significant (0.100
       to 0.104, say) do not page anyone.

    After an alarm the ADWIN window is emptied, so the new concept becomes the
    reference: one change raises one alarm, not one per cut while ADWIN works
    its way past the old data, and a further rise is measured from the new
    level. Cuts that fail 2 or 3 leave ADWIN to shrink its window as usual.

    ADWIN is the detector underneath because, on the streams its tests use,
    it is the only one of the four with no false alarm (DDM 7, EDDM 26 and
    Page-Hinkley 11 in 500,000 stationary events) and it has the smallest
    worst-case delay (600 events, against 736 to 4,633); it also estimates the
    error rate on both sides of the change, which condition 3 needs.

    A slow ramp that ADWIN follows in steps each smaller than ``min_increase``
    raises no alarm; lower ``min_increase`` where that matters.

    Parameters
    ----------
    min_increase
        Smallest rise of the error rate, in absolute terms, that is an alarm.
        Default 0.02: two points of accuracy, more than twice the smallest
        shift ADWIN can prove between two halves of 100,000 events at a 10 %
        error rate (about 0.008).
    adwin
        The ADWIN to drive; default ``ADWIN()`` (``delta=0.002``, ``clock=32``).

    Measured at the defaults by ``tests/unit/drift/detectors/test_rule.py``:

    * no alarm, and no ADWIN cut either, on ten stationary Bernoulli(0.1)
      streams of 100,000 events (seeds 0-9);
    * the error rate doubling from 0.10 to 0.20 after 5,000 events at 0.10
      raises exactly one alarm in the next 5,000 events, a median 312 and at
      most 600 events after the change over seeds 0-19 (the delays of ADWIN's
      own first cut: on every seed that first cut already passed the rule);
    * a fall from 0.20 to 0.10 makes ADWIN cut but raises no alarm.

    Examples
    --------
    The error rate doubles at event 5,000. A bare ADWIN cuts four times on the
    way to the new level; the rule raises one alarm.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> errors = np.concatenate([rng.random(5_000) < 0.1, rng.random(2_000) < 0.2]).tolist()
    >>> adwin, cuts = ADWIN(), []
    >>> for i, error in enumerate(errors):
    ...     adwin.update(error)
    ...     if adwin.drift_detected:
    ...         cuts.append(i)
    >>> cuts
    [5535, 5567, 5791, 6047]
    >>> rule = AlarmRule()
    >>> for i, error in enumerate(errors):
    ...     rule.update(error)
    ...     if rule.drift_detected:
    ...         print(f"alarm at {i}: {rule.baseline:.3f} -> {rule.alarm_rate:.3f}")
    alarm at 5535: 0.106 -> 0.190
    """

    def __init__(self, min_increase: float = 0.02, adwin: ADWIN | None = None) -> None:
        if not 0 < min_increase <= 1:
            raise ValueError(f"min_increase must be in (0, 1], got {min_increase}")
        self.min_increase = min_increase
        self._adwin = ADWIN() if adwin is None else adwin
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._baseline: float | None = None
        self._alarm_rate: float | None = None

    def reset(self) -> None:
        """Forget everything, the ADWIN window included."""
        self._adwin.reset()
        self._reset()

    @property
    def warning_detected(self) -> bool:
        """Always ``False``: the rule has no warning zone."""
        return False

    @property
    def error_rate(self) -> float:
        """ADWIN's estimate of the current error rate (0.0 right after an alarm)."""
        return self._adwin.estimation

    @property
    def baseline(self) -> float | None:
        """The error rate before the change at the latest alarm; ``None`` before any."""
        return self._baseline

    @property
    def alarm_rate(self) -> float | None:
        """The error rate after the change at the latest alarm; ``None`` before any."""
        return self._alarm_rate

    @property
    def adwin(self) -> ADWIN:
        """The ADWIN the rule drives (read it, do not feed it)."""
        return self._adwin

    def update(self, x: float) -> None:
        """Add one error (0/1) or loss in [0, 1]."""
        adwin = self._adwin
        adwin.update(x)
        self._n += 1
        self._drift = False
        if not adwin.drift_detected or adwin.last_split is None:
            return
        split = adwin.last_split
        if split.mean_after - split.mean_before >= self.min_increase:
            self._drift = True
            self._baseline, self._alarm_rate = split.mean_before, split.mean_after
            adwin.reset()

    def to_state(self) -> dict[str, Any]:
        """Parameters, verdict and the ADWIN state as JSON-safe values."""
        return {
            "min_increase": self.min_increase,
            "n": self._n,
            "drift": self._drift,
            "baseline": self._baseline,
            "alarm_rate": self._alarm_rate,
            "adwin": self._adwin.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """The rule that :meth:`to_state` described."""
        try:
            rule = cls(state["min_increase"], ADWIN.from_state(state["adwin"]))
            rule._n = int(state["n"])
            rule._drift = bool(state["drift"])
            baseline, alarm_rate = state["baseline"], state["alarm_rate"]
            rule._baseline = None if baseline is None else float(baseline)
            rule._alarm_rate = None if alarm_rate is None else float(alarm_rate)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an AlarmRule state: {exc!r}") from exc
        return rule
