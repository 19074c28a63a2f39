"""Inline SVG line charts for the overview page, laid out here so the page needs no script.

A chart plots values in [0, 1] (a drifted-feature share, an accuracy) over
windows, one series per model version. The template only draws what this
module computed: polyline points, the markers of flagged windows, grid lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 10, 26
# Distinct on white and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")
FLAG = "#d62728"


@dataclass(frozen=True, slots=True)
class Point:
    """One window of one series: its start, its value (None: not measured) and whether
    it was flagged (dataset drift, degraded accuracy)."""

    window_start: datetime
    series: str
    value: float | None
    flagged: bool = False


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    colour: str
    # One polyline per run of measured windows: a gap is not drawn across.
    lines: tuple[str, ...]
    markers: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str
    # The outer time labels align to the plot's edges, so they are not cut off.
    anchor: str = "middle"


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: int
    height: int
    series: tuple[Series, ...]
    flags: tuple[tuple[float, float], ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int

    @property
    def empty(self) -> bool:
        return not any(s.lines or s.markers for s in self.series)


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    if count == 1:
        return LEFT + span / 2
    return LEFT + span * index / (count - 1)


def _y(value: float) -> float:
    clamped = min(max(value, 0.0), 1.0)
    return TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - clamped)


def line_chart(title: str, points: Sequence[Point]) -> Chart:
    """Lay ``points`` out on a shared time axis (the distinct window starts, in order)."""
    starts = sorted({p.window_start for p in points})
    column = {start: i for i, start in enumerate(starts)}
    names = sorted({p.series for p in points})
    series: list[Series] = []
    flags: list[tuple[float, float]] = []
    for n, name in enumerate(names):
        mine = sorted((p for p in points if p.series == name), key=lambda p: p.window_start)
        runs: list[list[tuple[float, float]]] = [[]]
        previous = -2
        for p in mine:
            i = column[p.window_start]
            if p.value is None:
                runs.append([])
                continue
            if i != previous + 1:
                runs.append([])
            previous = i
            xy = (round(_x(i, len(starts)), 1), round(_y(p.value), 1))
            runs[-1].append(xy)
            if p.flagged:
                flags.append(xy)
        # A lone measured window between gaps has no line to sit on: it is drawn as a dot.
        lines = tuple(" ".join(f"{x},{y}" for x, y in r) for r in runs if len(r) > 1)
        dots = tuple(r[0] for r in runs if len(r) == 1)
        series.append(Series(name, PALETTE[n % len(PALETTE)], lines, dots))
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        series=tuple(series),
        flags=tuple(flags),
        y_ticks=tuple(Tick(round(_y(v), 1), f"{v:.0%}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)),
        x_ticks=_time_ticks(starts),
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_top=TOP,
        plot_bottom=HEIGHT - BOTTOM,
    )


def _time_ticks(starts: Sequence[datetime]) -> tuple[Tick, ...]:
    """The first, middle and last window starts (UTC), or fewer when there are fewer."""
    if not starts:
        return ()
    last = len(starts) - 1
    chosen = sorted({0, last // 2, last})
    fmt = "%H:%M:%S" if starts[0].date() == starts[-1].date() else "%m-%d %H:%M"

    def anchor(i: int) -> str:
        if last == 0 or 0 < i < last:
            return "middle"
        return "start" if i == 0 else "end"

    return tuple(
        Tick(round(_x(i, len(starts)), 1), starts[i].strftime(fmt), anchor(i)) for i in chosen
    )
