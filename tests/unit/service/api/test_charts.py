"""The overview page's SVG chart layout, on hand-made windows with exact coordinates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.api.charts import HEIGHT, LEFT, PALETTE, RIGHT, TOP, WIDTH, Point, line_chart

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BOTTOM_Y = HEIGHT - 26  # the plot's lower edge: value 0


def at(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def test_values_map_onto_the_plot_left_to_right_and_bottom_to_top() -> None:
    chart = line_chart("share", [Point(at(i), "v1", v) for i, v in enumerate([0.0, 0.5, 1.0])])
    (series,) = chart.series
    assert series.colour == PALETTE[0]
    middle = LEFT + (WIDTH - LEFT - RIGHT) / 2
    half = TOP + (BOTTOM_Y - TOP) / 2
    assert series.lines == (f"{LEFT}.0,{BOTTOM_Y}.0 {middle},{half} {WIDTH - RIGHT}.0,{TOP}.0",)
    assert series.markers == () and chart.flags == () and not chart.empty
    assert [(t.label, t.anchor) for t in chart.x_ticks] == [
        ("12:00:00", "start"),
        ("12:01:00", "middle"),
        ("12:02:00", "end"),
    ]
    assert [t.label for t in chart.y_ticks] == ["0%", "25%", "50%", "75%", "100%"]


def test_gaps_split_the_line_and_a_lone_window_is_a_dot() -> None:
    values = [0.1, 0.2, None, 0.4, None, 0.6, 0.7]
    chart = line_chart("share", [Point(at(i), "v1", v) for i, v in enumerate(values)])
    (series,) = chart.series
    assert [len(line.split()) for line in series.lines] == [2, 2]
    assert len(series.markers) == 1
    x, _ = series.markers[0]
    assert x == round(LEFT + (WIDTH - LEFT - RIGHT) * 3 / 6, 1)


def test_versions_are_series_on_one_time_axis_and_flags_are_marked() -> None:
    points = [
        Point(at(0), "v1", 0.2),
        Point(at(1), "v1", 0.3),
        Point(at(2), "v1", 0.9, flagged=True),
        # A canary seen from the second window on; missing in the first is a gap, not a line.
        Point(at(1), "v2", 0.1),
        Point(at(2), "v2", 0.1),
    ]
    chart = line_chart("share", points)
    assert [s.name for s in chart.series] == ["v1", "v2"]
    v1, v2 = chart.series
    assert v1.colour != v2.colour
    # Plot: x from 44 to 548 (middle 296), y from 10 (value 1) to 154 (value 0).
    assert v1.lines == ("44.0,125.2 296.0,110.8 548.0,24.4",)
    assert v2.lines == ("296.0,139.6 548.0,139.6",)
    assert chart.flags == ((548.0, 24.4),)


def test_values_outside_zero_to_one_stay_on_the_plot_and_no_windows_is_empty() -> None:
    chart = line_chart("accuracy", [Point(at(0), "v1", 1.5), Point(at(1), "v1", -0.5)])
    assert chart.series[0].lines == (f"{LEFT}.0,{TOP}.0 {WIDTH - RIGHT}.0,{BOTTOM_Y}.0",)
    empty = line_chart("accuracy", [])
    assert empty.empty and empty.series == () and empty.x_ticks == ()
    assert line_chart("accuracy", [Point(at(0), "v1", None)]).empty


def test_a_single_window_sits_in_the_middle_and_days_apart_show_dates() -> None:
    one = line_chart("share", [Point(at(0), "v1", 0.5)])
    assert one.series[0].markers == ((296.0, 82.0),)
    assert [(t.position, t.anchor) for t in one.x_ticks] == [(296.0, "middle")]
    apart = line_chart("share", [Point(at(0), "v1", 0.5), Point(at(60 * 24), "v1", 0.5)])
    assert [t.label for t in apart.x_ticks] == ["11-27 12:00", "11-28 12:00"]
