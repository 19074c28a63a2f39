"""Which event times a run trains on: the changed world, as far as it is labelled.

A run whose cause knows when the change began (its onset: the first window of a
drift or degradation streak, the first concept-drift alarm since the last run)
trains from that onset, so the old concept does not dilute the new model. The
range never reaches further back than ``data_window`` before its end, and when
too few rows are labelled since the onset (fewer than ``min_train_rows``,
counted from the per-window labelled counts) it widens back one window at a
time until there are enough, or the whole ``data_window`` is taken. A cause
without onset (a schedule, an operator's request) trains on the last
``data_window``. The end is the end of the newest labelled window.

Counts are by window: a window counts whole when any of it is in the range, so
the window holding an onset counts, and the counts are approximate ("~N").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# What the onset of each cause kind is, for the run's data note.
ONSETS = {
    "drift": "first drifted window of the streak",
    "degradation": "first degraded window of the streak",
    "concept_alarm": "first concept-drift alarm since the last run",
}


@dataclass(frozen=True, slots=True)
class LabeledWindow:
    """One window's labelled predictions, every version and partition summed."""

    start: datetime
    end: datetime
    labeled: int


@dataclass(frozen=True, slots=True)
class TrainingRange:
    start: datetime
    end: datetime
    onset: datetime | None
    note: str


def choose(
    cause: str,
    onset: datetime | None,
    end: datetime,
    data_window: timedelta,
    min_rows: int,
    windows: Sequence[LabeledWindow],
) -> TrainingRange:
    """The range a run of ``cause`` trains on; ``windows`` are those overlapping
    [``end - data_window``, ``end``]."""
    floor = end - data_window
    if onset is None:
        rows = _rows_after(windows, floor)
        note = f"no change onset ({cause}): the last data_window, {_span(floor, end, rows)}"
        return TrainingRange(floor, end, None, note)
    what = f"the change onset {onset.isoformat()} ({ONSETS.get(cause, cause)})"
    if onset <= floor:
        rows = _rows_after(windows, floor)
        note = f"{what} is older than data_window: the last data_window, {_span(floor, end, rows)}"
        return TrainingRange(floor, end, onset, note)
    start = min(onset, end)
    since_onset = rows = _rows_after(windows, start)
    if rows >= min_rows:
        note = (
            f"from {what} to the newest labelled window's end {end.isoformat()}; "
            f"~{rows} labelled rows"
        )
        return TrainingRange(start, end, onset, note)
    for w in sorted(windows, key=lambda w: w.start, reverse=True):
        if rows >= min_rows or w.end <= floor:
            break
        if w.end <= start:  # a window not counted yet: the range takes it whole
            start = max(w.start, floor)
            rows += w.labeled
    if rows < min_rows:
        start = floor
        note = (
            f"widened back to the whole data_window: only {since_onset} labelled rows since "
            f"{what}, fewer than min_train_rows {min_rows}; {_span(floor, end, rows)}"
        )
        return TrainingRange(floor, end, onset, note)
    note = (
        f"widened back to {start.isoformat()} to reach min_train_rows {min_rows}: only "
        f"{since_onset} labelled rows since {what}; {_span(start, end, rows)}"
    )
    return TrainingRange(start, end, onset, note)


def _rows_after(windows: Sequence[LabeledWindow], start: datetime) -> int:
    return sum(w.labeled for w in windows if w.end > start)


def _span(start: datetime, end: datetime, rows: int) -> str:
    return f"{start.isoformat()} to {end.isoformat()}, ~{rows} labelled rows"
