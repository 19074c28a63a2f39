"""What every detector shares: an event count, a drift flag and a full reset."""

from __future__ import annotations


class DetectorBase:
    """``reset``, ``n`` and ``drift_detected``; subclasses rebuild their state in ``_reset``.

    A subclass's ``_reset`` calls ``super()._reset()`` and then clears its own
    statistics; ``update`` counts into ``_n`` and sets ``_drift``.
    """

    _n: int
    _drift: bool

    def _reset(self) -> None:
        self._n = 0
        self._drift = False

    def reset(self) -> None:
        """Forget everything, as if newly constructed."""
        self._reset()

    @property
    def n(self) -> int:
        """Events seen since construction or :meth:`reset` (drifts do not reset it)."""
        return self._n

    @property
    def drift_detected(self) -> bool:
        """Whether the last update was detected as a drift."""
        return self._drift
