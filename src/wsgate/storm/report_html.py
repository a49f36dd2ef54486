"""One self-contained HTML page for one storm result, or two side by side (`--compare`).

Inline CSS and SVG only (see `storm.plot`): no script, no font, no network at view time.
`render(results)` takes the dicts `runner.run_storm` returns (or their JSON files). Every
outcome's time is shown, not only the successes'; the summary rows are the terminal's
(`report_text.LATENCY_KEYS`); runs side by side share their scales.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from wsgate.storm import plot, stats
from wsgate.storm.plot import Series
from wsgate.storm.report_text import LATENCY_KEYS

RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")
NINES_CAP = 5.0  # the percentile chart's right edge: 99.999 %
PERCENTILE_TICKS = [
    (0.0, "0%"),
    (50.0, "50%"),
    (90.0, "90%"),
    (99.0, "99%"),
    (99.9, "99.9%"),
    (99.99, "99.99%"),
    (99.999, "max"),
]

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #666; } .note { background: #fff4d6; padding: 6px 10px; border-radius: 4px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 12px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
svg.plot { background: #fff; border: 1px solid #ddd; }
svg .grid { stroke: #eee; } svg .axes { fill: none; stroke: #999; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .title { font-size: 13px; font-weight: 600; } svg .empty { fill: #999; font-size: 14px; }
table.outcomes td:nth-child(2) { color: #666; }
"""


def _nines(pct: float) -> float:
    return -math.log10(max(1.0 - pct / 100.0, 10.0**-NINES_CAP))


def _get(result: dict[str, Any], *path: str) -> Any:
    value: Any = result["summary"]
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _latency_rows(name: str, key: str) -> list[tuple[str, tuple[str, ...], str, bool]]:
    return [(f"{name} {label}", (key, k), " ms", True) for k, label in LATENCY_KEYS]


# (label, path in summary, unit, lower is better); the ratio column is B / A. The rows and
# percentiles are the terminal's (report_text.rows).
METRICS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("handshakes started", ("started",), "", False),
    ("succeeded (101)", ("ok",), "", False),
    ("failed", ("failed",), "", True),
    *_latency_rows("handshake", "handshake_ms"),
    *_latency_rows("time to failure", "failed_ms"),
    ("Retry-After received", ("retry_after_s", "count"), "", False),
    ("Retry-After min", ("retry_after_s", "min"), " s", False),
    ("Retry-After p50", ("retry_after_s", "p50"), " s", False),
    ("Retry-After max", ("retry_after_s", "max"), " s", False),
    ("round trips", ("rtt_ms", "count"), "", False),
    *_latency_rows("round trip", "rtt_ms"),
    ("messages/s", ("messages_per_s",), "", False),
    ("time to last success", ("time_to_last_success_s",), " s", True),
    ("elapsed", ("elapsed_s",), " s", True),
    ("handshakes/s (ok)", ("handshakes_per_s",), "", False),
]


ALWAYS_SHOWN = frozenset({"handshake_ms", "time_to_last_success_s", "handshakes_per_s"})


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return text + unit


def _shown(values: list[Any], path: tuple[str, ...]) -> bool:
    """A row is shown when some run has a value (rows the terminal always prints, always);
    counts of 0 hide their group's rows."""
    if all(v is None for v in values):
        return path[0] in ALWAYS_SHOWN
    return not (path[-1] == "count" and not any(values))


def summary_table(results: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(r['label'])}</th>" for r in results)
    ratio = len(results) == 2
    rows = [f"<tr><th></th>{head}{'<th>B / A</th>' if ratio else ''}</tr>"]
    round_trips = any(_get(r, "rtt_ms", "count") for r in results)
    for label, path, unit, _lower in METRICS:
        values = [_get(r, *path) for r in results]
        if not _shown(values, path) or (path == ("messages_per_s",) and not round_trips):
            continue
        cells = "".join(f"<td>{_fmt(v, unit)}</td>" for v in values)
        if ratio:
            a, b = values
            cells += f"<td>{b / a:.2f}×</td>" if a and b is not None else "<td>–</td>"
        rows.append(f"<tr><td>{escape(label)}</td>{cells}</tr>")
        if path == ("time_to_last_success_s",) and any(r.get("ideal") for r in results):
            ideal = [(r.get("ideal") or {}).get("time_to_last_success_s") for r in results]
            cells = "".join(f"<td>{_fmt(v, ' s')}</td>" for v in ideal)
            rows.append(
                f"<tr><td>&nbsp;&nbsp;ideal (--capacity)</td>{cells}"
                f"{'<td></td>' if ratio else ''}</tr>"
            )
    names: list[str] = []
    for r in results:
        names += [n for n in _get(r, "outcomes") or {} if n not in names]
    for name in sorted(names, key=stats.outcome_sort_key):
        cells = "".join(
            f"<td>{_fmt((_get(r, 'outcomes') or {}).get(name, 0))}</td>" for r in results
        )
        rows.append(
            f"<tr><td>outcome {escape(name)}</td>{cells}{'<td></td>' if ratio else ''}</tr>"
        )
    cpu = "".join(f"<td>{_fmt(r['client']['cpu_s'], ' s')}</td>" for r in results)
    rows.append(f"<tr><td>client CPU</td>{cpu}{'<td></td>' if ratio else ''}</tr>")
    return '<table class="summary">' + "\n".join(rows) + "</table>"


def outcome_table(result: dict[str, Any]) -> str:
    """Count and time to outcome (the terminal's percentiles) of each outcome of a run."""
    by_outcome = _get(result, "outcome_ms") or {}
    head = "".join(f"<th>{label}</th>" for _k, label in LATENCY_KEYS)
    rows = [f"<tr><th>{escape(result['label'])}</th><th>count</th>{head}</tr>"]
    for name, count in (_get(result, "outcomes") or {}).items():
        figures = by_outcome.get(name) or {}
        cells = "".join(f"<td>{_fmt(figures.get(k), ' ms')}</td>" for k, _l in LATENCY_KEYS)
        rows.append(f"<tr><td>{escape(name)}</td><td>{_fmt(count)}</td>{cells}</tr>")
    return '<table class="outcomes">' + "\n".join(rows) + "</table>"


def _run_meta(result: dict[str, Any]) -> str:
    cfg = result["config"]
    arrival = ", ".join(f"{k}={v}" for k, v in cfg["arrival"].items())
    session = cfg["session"]
    parts = [
        f"<b>{escape(result['label'])}</b>: {escape(result['url'])}",
        f"started {escape(result['started_at'])}",
        escape(arrival),
        f"workers={cfg['workers']}",
        f"messages={session['messages']}×{session['size']} B",
        f"timeout={cfg['timeout_s']:g} s",
    ]
    lines = [f'<p class="meta">{" · ".join(parts)}</p>']
    if result.get("interrupted"):
        lines.append(
            '<p class="note">interrupted (Ctrl-C): the figures cover the part that ran</p>'
        )
    for note in result["client"]["notes"]:
        lines.append(f'<p class="note">client: {escape(note)}</p>')
    return "\n".join(lines)


def _series(result: dict[str, Any]) -> tuple[dict[str, Any], list[float], list[float]]:
    """A run's series, the midpoint of each bucket and the time each bucket covers (the
    bucket width for results written before the last bucket's partial width was kept)."""
    s = result["summary"]["series"]
    widths = s.get("width_s") or [s["bucket_s"]] * len(s["t"])
    mid = [t + w / 2 for t, w in zip(s["t"], widths, strict=True)]
    return s, mid, widths


def _prefix(results: list[dict[str, Any]], result: dict[str, Any]) -> str:
    return f"{result['label']} " if len(results) > 1 else ""


def latency_over_time(results: list[dict[str, Any]]) -> str:
    series: list[Series] = []
    for i, r in enumerate(results):
        s, mid, _ = _series(r)
        color = RUN_COLORS[i % len(RUN_COLORS)]
        prefix = _prefix(results, r)
        series.append(Series(f"{prefix}101 p99", mid, s.get("handshake_p99_ms", []), color))
        series.append(
            Series(f"{prefix}101 p50", mid, s.get("handshake_p50_ms", []), color, dashed=True)
        )
        if any(v is not None for v in s.get("failed_p99_ms", [])):
            series.append(Series(f"{prefix}failed p99", mid, s["failed_p99_ms"], color, dash="1 3"))
    return plot.line_chart(
        "latency",
        "Time to outcome over time (101 and failures)",
        series,
        "seconds since start",
        "ms (log)",
        log_y=True,
        x_min=0.0,
    )


def throughput_over_time(results: list[dict[str, Any]]) -> str:
    series: list[Series] = []
    for i, r in enumerate(results):
        s, mid, _ = _series(r)
        color = RUN_COLORS[i % len(RUN_COLORS)]
        prefix = _prefix(results, r)
        series.append(Series(f"{prefix}handshakes/s", mid, s.get("ok_per_s", []), color))
        if any(s.get("messages_per_s", [])):
            series.append(
                Series(f"{prefix}messages/s", mid, s["messages_per_s"], color, dashed=True)
            )
    return plot.line_chart(
        "throughput",
        "Throughput over time",
        series,
        "seconds since start",
        "per second",
        x_min=0.0,
    )


def _ideal_key(result: dict[str, Any]) -> tuple[Any, ...] | None:
    ideal = result.get("ideal")
    if not ideal:
        return None
    return (ideal["capacity_per_s"], ideal["time_to_last_success_s"], ideal["ok_total"][-1])


def successes_over_time(results: list[dict[str, Any]]) -> str:
    """101s so far, and the ideal run's when the target's capacity was given."""
    series: list[Series] = []
    ideals: list[tuple[Any, ...]] = []
    for i, r in enumerate(results):
        s, _, widths = _series(r)
        color = RUN_COLORS[i % len(RUN_COLORS)]
        ends, total, so_far = [0.0], [0.0], 0.0
        for t, w, ok in zip(s["t"], widths, s["outcomes"].get(stats.OK, []), strict=False):
            so_far += ok
            ends.append(t + w)
            total.append(so_far)
        series.append(Series(f"{_prefix(results, r)}101 so far", ends, total, color))
        ideal = r.get("ideal")
        # Runs of the same storm against targets of the same capacity share one ideal
        # (drawn to the longer run's end).
        same = _ideal_key(r)
        if ideal and same is not None and same not in ideals:
            ideals.append(same)
            name = f"ideal at {ideal['capacity_per_s']:g}/s"
            if len(results) > 1 and len({_ideal_key(x) for x in results if x.get("ideal")}) > 1:
                name = f"{r['label']} {name}"
            longest = max(
                (x["ideal"] for x in results if _ideal_key(x) == same), key=lambda x: x["t"][-1]
            )
            series.append(Series(name, longest["t"], longest["ok_total"], "#555", dash="6 3"))
    return plot.line_chart(
        "successes",
        "Successes so far" + (" against the ideal" if ideals else ""),
        series,
        "seconds since start",
        "handshakes with a 101",
        x_min=0.0,
    )


def percentile_chart(results: list[dict[str, Any]], key: str, title: str) -> str:
    series: list[Series] = []
    for i, r in enumerate(results):
        curve = r["summary"]["percentiles"][key]
        color = RUN_COLORS[i % len(RUN_COLORS)]
        series.append(Series(r["label"], [p for p, _ in curve], [v for _, v in curve], color))
    return plot.line_chart(
        f"percentiles-{key}",
        title,
        series,
        "percentile",
        "ms (log)",
        log_y=True,
        x_transform=_nines,
        x_ticks=PERCENTILE_TICKS,
    )


RUN_DASHES = ("", "5 3", "1 3", "8 3 2 3")


def outcome_colors(results: list[dict[str, Any]]) -> dict[str, str]:
    """One color per outcome across every run, so a 503 looks the same side by side."""
    names: list[str] = []
    for r in results:
        names += [n for n in r["summary"]["series"].get("outcomes", {}) if n not in names]
        names += [n for n in _get(r, "outcomes") or {} if n not in names]
    ordered = sorted(names, key=stats.outcome_sort_key)
    return {name: plot.outcome_color(name, i) for i, name in enumerate(ordered)}


def outcome_percentile_chart(results: list[dict[str, Any]], colors: dict[str, str]) -> str:
    """Time to each outcome by percentile: one line per outcome (and run, by its dash)."""
    series: list[Series] = []
    for i, r in enumerate(results):
        curves = r["summary"]["percentiles"].get("outcome_ms") or {}
        for name, curve in curves.items():
            label = f"{_prefix(results, r)}{name}"
            xs, ys = [p for p, _ in curve], [v for _, v in curve]
            dash = RUN_DASHES[i % len(RUN_DASHES)]
            series.append(Series(label, xs, ys, colors.get(name, "#333"), dash=dash))
    return plot.line_chart(
        "percentiles-outcome_ms",
        "Time to outcome by percentile, per outcome",
        series,
        "percentile",
        "ms (log)",
        log_y=True,
        x_transform=_nines,
        x_ticks=PERCENTILE_TICKS,
    )


def _bar_scale(results: list[dict[str, Any]]) -> tuple[float, float]:
    """The largest time and the largest rate of any run's outcome bars: runs being
    compared are drawn on the same scales."""
    x_max = y_max = 0.0
    for r in results:
        s, _, widths = _series(r)
        if not s["t"]:
            continue
        x_max = max(x_max, s["t"][-1] + widths[-1])
        columns = zip(*s.get("outcomes", {}).values(), strict=True)
        y_max = max([y_max, *(sum(c) / w for c, w in zip(columns, widths, strict=False))])
    return x_max, y_max


def outcomes_over_time(
    result: dict[str, Any],
    index: int,
    colors: dict[str, str] | None = None,
    scale: tuple[float, float] | None = None,
) -> str:
    s, _, widths = _series(result)
    x_max, y_max = scale or (None, None)
    return plot.stacked_bars(
        f"outcomes-{index}",
        f"Outcomes over time: {result['label']}",
        s["t"],
        s.get("outcomes", {}),
        widths,
        colors=colors,
        x_max=x_max,
        y_max=y_max,
    )


def retry_after_chart(result: dict[str, Any], index: int, x_max: float) -> str:
    values = (_get(result, "retry_after_s") or {}).get("values") or {}
    return plot.value_bars(
        f"retry-after-{index}",
        f"Retry-After values received: {result['label']}",
        {float(k): int(v) for k, v in values.items()},
        "#ff7f0e",
        "Retry-After (s)",
        "answers",
        x_max=x_max,
    )


def render(results: list[dict[str, Any]]) -> str:
    """The whole page. One result: its report; two: side by side with B / A ratios."""
    if not results:
        raise ValueError("nothing to render")
    title = "wsgate storm: " + " vs ".join(r["label"] for r in results)
    colors = outcome_colors(results)
    scale = _bar_scale(results)
    plots = [latency_over_time(results), successes_over_time(results)]
    plots.append(throughput_over_time(results))
    plots += [outcomes_over_time(r, i, colors, scale) for i, r in enumerate(results)]
    plots.append(percentile_chart(results, "handshake_ms", "Handshake latency (101) by percentile"))
    if any(_get(r, "failed") for r in results):
        plots.append(outcome_percentile_chart(results, colors))
    retry_max = max(float((_get(r, "retry_after_s") or {}).get("max") or 0) for r in results)
    plots += [
        retry_after_chart(r, i, retry_max + 1.0)
        for i, r in enumerate(results)
        if (_get(r, "retry_after_s") or {}).get("count")
    ]
    if any(r["summary"]["rtt_ms"]["count"] for r in results):
        plots.append(percentile_chart(results, "rtt_ms", "Echo round trip by percentile"))
    failed = any(_get(r, "failed") for r in results)
    body = [
        f"<h1>{escape(title)}</h1>",
        *(_run_meta(r) for r in results),
        "<h2>Summary</h2>",
        summary_table(results),
        *(
            ["<h2>Time to each outcome</h2>", *(outcome_table(r) for r in results)]
            if failed
            else []
        ),
        '<p class="meta">Handshake latency is of 101s; every other outcome has its own time '
        "to outcome (a 503 after 5 ms and a timeout after 60 s are different news). Time "
        "buckets: "
        + ", ".join(f"{r['summary']['series']['bucket_s']:g} s" for r in results)
        + "; a bar is as wide as the time its bucket covers, so the last one may be "
        "narrower. Runs side by side share their scales.</p>",
        "<h2>Plots</h2>",
        '<div class="plots">',
        *plots,
        "</div>",
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
