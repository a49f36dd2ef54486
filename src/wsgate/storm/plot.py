"""Inline SVG charts for the HTML report: pure functions from numbers to markup.

No script and no external file: a report must open offline, years later. Each data line
is one `<polyline class="series">` per unbroken run of points, with `data-series` and
`data-points` (the number of points drawn), and each bar a `<rect class="bar">`, so a test
can check in the browser's DOM that a plot holds data. The legend sits below the plot area
(`<g class="legend">`), never over the data; charts of runs being compared take the same
`x_max`/`y_max` so their scales match.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 560
HEIGHT = 300  # the plot area and its axis labels; the legend adds rows below
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 34, 46
LEGEND_ROW = 16
LEGEND_CHAR = 6.2  # px per character of legend text at 11 px
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
OUTCOME_COLORS = {
    "101": "#2ca02c",
    "refused": "#9467bd",
    "reset": "#8c564b",
    "timeout": "#7f7f7f",
    "closed": "#bcbd22",
}
STATUS_COLORS = ("#d62728", "#ff7f0e", "#e377c2", "#17becf", "#1f77b4", "#aec7e8")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str
    dashed: bool = False
    dash: str = ""  # an SVG dash pattern; overrides `dashed`

    @property
    def pattern(self) -> str:
        return self.dash or ("5 3" if self.dashed else "")


def outcome_color(name: str, index: int) -> str:
    return OUTCOME_COLORS.get(name) or STATUS_COLORS[index % len(STATUS_COLORS)]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 times a power of ten) covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks: list[float] = [math.floor(low / step) * step]
    # The last tick is the first one at or above `high`, so data never overflows the axes.
    while ticks[-1] < high - step * 1e-9 and len(ticks) < 50:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks for a log axis over [low, high] (both > 0)."""
    ticks: list[float] = []
    exponent = math.floor(math.log10(low))
    while len(ticks) < 40:
        for mult in (1, 2, 5):
            value = mult * 10.0**exponent
            if value > high * 1.0001:
                return ticks or [low, high]
            if value >= low * 0.9999:
                ticks.append(value)
        exponent += 1
    return ticks


def fmt_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:g}"
    return f"{value:.3g}"


def _frame(plot_id: str, title: str, x_label: str, y_label: str, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg class="plot" data-plot="{escape(plot_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img">',
        f"<title>{escape(title)}</title>",
        f'<text x="{WIDTH / 2}" y="18" class="title" text-anchor="middle">{escape(title)}</text>',
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}" text-anchor="middle" '
        f'class="label">{escape(x_label)}</text>',
        f'<text x="14" y="{(TOP + HEIGHT - BOTTOM) / 2}" text-anchor="middle" class="label" '
        f'transform="rotate(-90 14 {(TOP + HEIGHT - BOTTOM) / 2})">{escape(y_label)}</text>',
    ]


def _axes(x_ticks: list[tuple[float, str]], y_ticks: list[tuple[float, str]]) -> list[str]:
    """Grid lines and labels; tick positions are already in pixels."""
    out = []
    for py, label in y_ticks:
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" class="tick">{label}</text>'
        )
    for px, label in x_ticks:
        out.append(
            f'<line class="grid" y1="{TOP}" y2="{HEIGHT - BOTTOM}" x1="{px:.1f}" x2="{px:.1f}"/>'
        )
        out.append(
            f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'class="tick">{label}</text>'
        )
    out.append(
        f'<rect class="axes" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}"/>'
    )
    return out


def _legend_layout(names: Sequence[str]) -> list[tuple[float, int]]:
    """(x, row) of each legend item, left to right, wrapping within the chart's width."""
    out: list[tuple[float, int]] = []
    x, row = float(LEFT), 0
    for name in names:
        width = 30 + LEGEND_CHAR * len(name)
        if x > LEFT and x + width > WIDTH - RIGHT:
            x, row = float(LEFT), row + 1
        out.append((x, row))
        x += width + 10
    return out


def legend_height(names: Sequence[str]) -> int:
    """Extra height below the plot for the legend of `names` (0 without items)."""
    layout = _legend_layout(names)
    return (layout[-1][1] + 1) * LEGEND_ROW + 4 if layout else 0


def _legend(items: list[tuple[str, str, str]]) -> list[str]:
    """Below the x-axis label: (name, color, dash pattern) per item."""
    if not items:
        return []
    out = [f'<g class="legend" data-top="{HEIGHT}">']
    for (name, color, dash), (x, row) in zip(
        items, _legend_layout([name for name, _, _ in items]), strict=True
    ):
        y = HEIGHT + 12 + row * LEGEND_ROW
        pattern = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{x:.0f}" x2="{x + 18:.0f}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" '
            f'stroke-width="3"{pattern}/>'
        )
        out.append(f'<text x="{x + 22:.0f}" y="{y}" class="legend">{escape(name)}</text>')
    out.append("</g>")
    return out


def empty_chart(plot_id: str, title: str, why: str) -> str:
    parts = _frame(plot_id, title, "", "")
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">'
        f"{escape(why)}</text></svg>"
    )
    return "\n".join(parts)


def line_chart(
    plot_id: str,
    title: str,
    series: list[Series],
    x_label: str,
    y_label: str,
    *,
    log_y: bool = False,
    x_transform: Callable[[float], float] | None = None,
    x_ticks: list[tuple[float, str]] | None = None,
    x_min: float | None = None,
) -> str:
    """Lines over shared axes; points whose y is None are skipped. `x_transform` maps data
    x to axis x (e.g. percentile to nines); `x_ticks` then gives (data x, label) pairs.
    `x_min` pins the left edge (0 for time), whatever the first point."""
    tx = x_transform or (lambda v: v)
    points = [
        (tx(x), y)
        for s in series
        for x, y in zip(s.xs, s.ys, strict=False)
        if y is not None and (not log_y or y > 0)
    ]
    if not points:
        return empty_chart(plot_id, title, "no data")
    x_low = min(p[0] for p in points) if x_min is None else tx(x_min)
    x_high = max(p[0] for p in points)
    if x_high <= x_low:
        x_high = x_low + 1.0
    ys = [float(p[1]) for p in points]
    if log_y:
        y_low, y_high = min(ys), max(ys)
        y_low = 10 ** math.floor(math.log10(y_low))
        y_high = 10 ** math.ceil(math.log10(y_high)) if y_high > y_low else y_low * 10
        yt = log_ticks(y_low, y_high)

        def py(v: float) -> float:
            frac = (math.log10(v) - math.log10(y_low)) / (math.log10(y_high) - math.log10(y_low))
            return HEIGHT - BOTTOM - frac * (HEIGHT - TOP - BOTTOM)
    else:
        yt = nice_ticks(0.0, max(ys))
        y_low, y_high = yt[0], yt[-1]

        def py(v: float) -> float:
            frac = (v - y_low) / (y_high - y_low)
            return HEIGHT - BOTTOM - frac * (HEIGHT - TOP - BOTTOM)

    def px(v: float) -> float:
        return LEFT + (v - x_low) / (x_high - x_low) * (WIDTH - LEFT - RIGHT)

    if x_ticks is None:
        xt = [(px(v), fmt_number(v)) for v in nice_ticks(x_low, x_high) if x_low <= v <= x_high]
    else:
        xt = [(px(tx(v)), label) for v, label in x_ticks if x_low <= tx(v) <= x_high + 1e-9]
    parts = _frame(
        plot_id, title, x_label, y_label, HEIGHT + legend_height([s.name for s in series])
    )
    parts += _axes(xt, [(py(v), fmt_number(v)) for v in yt])
    for s in series:
        dash = f' stroke-dasharray="{s.pattern}"' if s.pattern else ""
        # A missing value (an empty time bucket) breaks the line instead of bridging the gap.
        segments: list[list[str]] = [[]]
        for x, y in zip(s.xs, s.ys, strict=False):
            if y is None or (log_y and y <= 0):
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append(f"{px(tx(x)):.1f},{py(float(y)):.1f}")
        for coords in (seg for seg in segments if seg):
            parts.append(
                f'<polyline class="series" data-series="{escape(s.name)}" '
                f'data-points="{len(coords)}" fill="none" stroke="{s.color}" stroke-width="2"'
                f'{dash} points="{" ".join(coords)}"/>'
            )
            if len(coords) == 1:  # a single point draws no line: mark it
                x_px, y_px = coords[0].split(",")
                parts.append(f'<circle cx="{x_px}" cy="{y_px}" r="3" fill="{s.color}"/>')
    parts += _legend([(s.name, s.color, s.pattern) for s in series])
    parts.append("</svg>")
    return "\n".join(parts)


def stacked_bars(
    plot_id: str,
    title: str,
    t: Sequence[float],
    stacks: dict[str, Sequence[int]],
    widths: Sequence[float],
    *,
    colors: dict[str, str] | None = None,
    x_max: float | None = None,
    y_max: float | None = None,
    y_label: str = "handshakes ended per second",
) -> str:
    """One bar per time bucket, stacked by outcome (101 at the bottom), as a rate: a bar
    is as wide as the time its bucket covers (`widths`; the last one may be partial) and as
    high as its count over that time, so a short last bucket is not drawn as a drop.
    `x_max`/`y_max` give charts of runs being compared the same scales."""
    if not t or not stacks:
        return empty_chart(plot_id, title, "no data")
    totals = [
        sum(col) / w for col, w in zip(zip(*stacks.values(), strict=True), widths, strict=True)
    ]
    yt = nice_ticks(0.0, max(max(totals), y_max or 0.0, 1e-9))
    y_high = yt[-1]
    x_high = max(t[-1] + widths[-1], x_max or 0.0)
    span = WIDTH - LEFT - RIGHT
    height = HEIGHT - TOP - BOTTOM

    def px(v: float) -> float:
        return LEFT + v / x_high * span

    def scale(v: float) -> float:
        return v / y_high * height

    colors = colors or {name: outcome_color(name, i) for i, name in enumerate(stacks)}
    names = list(stacks)
    parts = _frame(plot_id, title, "seconds since start", y_label, HEIGHT + legend_height(names))
    xt = [(px(v), fmt_number(v)) for v in nice_ticks(0.0, x_high) if v <= x_high]
    parts += _axes(xt, [(HEIGHT - BOTTOM - scale(v), fmt_number(v)) for v in yt])
    for i, start in enumerate(t):
        base = 0.0
        bar_w = max(px(start + widths[i]) - px(start) - 1.0, 0.8)
        for name, counts in stacks.items():
            count = counts[i]
            if not count:
                continue
            rate = count / widths[i]
            h = scale(rate)
            y = HEIGHT - BOTTOM - scale(base) - h
            parts.append(
                f'<rect class="bar" data-outcome="{escape(name)}" data-count="{count}" '
                f'data-rate="{rate:.3f}" x="{px(start):.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{colors[name]}"><title>{start:g}-'
                f"{start + widths[i]:g} s: {count} {escape(name)}</title></rect>"
            )
            base += rate
    parts += _legend([(name, colors[name], "") for name in names])
    parts.append("</svg>")
    return "\n".join(parts)


def value_bars(
    plot_id: str,
    title: str,
    values: dict[float, int],
    color: str,
    x_label: str,
    y_label: str,
    *,
    x_max: float | None = None,
) -> str:
    """One thin bar per value (e.g. each Retry-After in seconds) as high as its count."""
    if not values:
        return empty_chart(plot_id, title, "no data")
    x_high = max(max(values) + 1.0, x_max or 0.0)
    yt = nice_ticks(0.0, max(values.values()))
    y_high = yt[-1]
    span = WIDTH - LEFT - RIGHT
    height = HEIGHT - TOP - BOTTOM
    xt = [v for v in nice_ticks(0.0, x_high) if v <= x_high]

    def px(v: float) -> float:
        return LEFT + v / x_high * span

    parts = _frame(plot_id, title, x_label, y_label)
    parts += _axes(
        [(px(v), fmt_number(v)) for v in xt],
        [(HEIGHT - BOTTOM - v / y_high * height, fmt_number(v)) for v in yt],
    )
    bar_w = max(min(span / x_high * 0.8, 24.0), 2.0)
    for value, count in sorted(values.items()):
        h = count / y_high * height
        parts.append(
            f'<rect class="bar" data-value="{value:g}" data-count="{count}" '
            f'x="{max(px(value) - bar_w / 2, LEFT):.1f}" y="{HEIGHT - BOTTOM - h:.1f}" '
            f'width="{bar_w:.1f}" '
            f'height="{h:.1f}" fill="{color}"><title>{value:g}: {count}</title></rect>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
