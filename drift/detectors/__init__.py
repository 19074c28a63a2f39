"""Streaming concept-drift detectors on a model's per-event errors or losses.

One detector per module, each fed one value at a time with ``update(x)``:
:class:`~drift.detectors.ddm.DDM` and :class:`~drift.detectors.eddm.EDDM` on
0/1 errors, :class:`~drift.detectors.adwin.ADWIN` on values in [0, 1] and
:class:`~drift.detectors.page_hinkley.PageHinkley` on any finite value. They
share the :class:`Detector` shape, and their state is a dict of JSON-safe
values, so a consumer can persist a detector between batches and resume it
exactly. :class:`~drift.detectors.rule.AlarmRule` turns ADWIN's cuts into the
concept-drift verdict that alerts are raised on.

>>> ddm = DDM()
>>> for error in [0, 1, 0, 0, 0] * 10:
...     ddm.update(error)
>>> ddm.n, ddm.drift_detected
(50, False)
>>> restored = detector_from_state("ddm", ddm.to_state())
>>> restored.to_state() == ddm.to_state()
True
"""

from __future__ import annotations

from typing import Any, Protocol, Self

from drift.detectors.adwin import ADWIN, Split
from drift.detectors.ddm import DDM
from drift.detectors.eddm import EDDM
from drift.detectors.page_hinkley import PageHinkley
from drift.detectors.rule import AlarmRule

__all__ = [
    "ADWIN",
    "DDM",
    "DETECTORS",
    "EDDM",
    "AlarmRule",
    "Detector",
    "PageHinkley",
    "Split",
    "detector_from_state",
]


class Detector(Protocol):
    """What every streaming detector offers.

    ``drift_detected`` and ``warning_detected`` describe the last update only;
    detectors without a warning zone always report ``False`` for it, so callers
    never need to ask which kind they hold. :meth:`to_state` returns only ints,
    floats, strings, bools, ``None`` and lists and dicts of them, parameters
    included, and :meth:`from_state` rebuilds a detector that continues
    exactly where the original stood.
    """

    @property
    def n(self) -> int:
        """Events seen since construction or :meth:`reset`."""
        ...

    @property
    def drift_detected(self) -> bool:
        """Whether the last update was a drift."""
        ...

    @property
    def warning_detected(self) -> bool:
        """Whether the last update left the detector in its warning zone."""
        ...

    def update(self, x: float) -> None:
        """Add one value of the monitored stream."""
        ...

    def reset(self) -> None:
        """Forget everything, as if newly constructed."""
        ...

    def to_state(self) -> dict[str, Any]:
        """Parameters and statistics as JSON-safe values."""
        ...

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """The detector that :meth:`to_state` described."""
        ...


DETECTORS: dict[str, type[Detector]] = {
    "ddm": DDM,
    "eddm": EDDM,
    "adwin": ADWIN,
    "page_hinkley": PageHinkley,
}


def detector_from_state(name: str, state: dict[str, Any]) -> Detector:
    """Rebuild the detector registered as ``name`` from its :meth:`~Detector.to_state`.

    An unknown name is an error that lists the known ones.

    >>> detector_from_state("cusum", {})
    Traceback (most recent call last):
    ...
    ValueError: unknown detector 'cusum'; known: adwin, ddm, eddm, page_hinkley
    """
    try:
        cls = DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown detector {name!r}; known: {known}") from None
    return cls.from_state(state)
