"""One self-contained HTML page for one storm result, or two side by side (`--compare`).

Inline CSS and SVG only (see `storm.plot`): no script, no font, no network at view time.
`render(results)` takes the dicts `runner.run_storm` returns (or their JSON files).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from wsgate.storm import plot, stats
from wsgate.storm.plot import Series

RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")
NINES_CAP = 5.0  # the percentile chart's right edge: 99.999 %
PERCENTILE_TICKS = [
    (0.0, "0%"),
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
"""


def _nines(pct: float) -> float:
    return -math.log10(max(1.0 - pct / 100.0, 10.0**-NINES_CAP))


def _get(result: dict[str, Any], *path: str) -> Any:
    value: Any = result["summary"]
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


# (label, path in summary, unit, lower is better); the ratio column is B / A.
METRICS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("handshakes started", ("started",), "", False),
    ("succeeded (101)", ("ok",), "", False),
    ("failed", ("failed",), "", True),
    ("handshake p50", ("handshake_ms", "p50"), " ms", True),
    ("handshake p90", ("handshake_ms", "p90"), " ms", True),
    ("handshake p99", ("handshake_ms", "p99"), " ms", True),
    ("handshake p99.9", ("handshake_ms", "p999"), " ms", True),
    ("handshake max", ("handshake_ms", "max"), " ms", True),
    ("round trips", ("rtt_ms", "count"), "", False),
    ("round trip p50", ("rtt_ms", "p50"), " ms", True),
    ("round trip p99", ("rtt_ms", "p99"), " ms", True),
    ("round trip max", ("rtt_ms", "max"), " ms", True),
    ("time to last success", ("time_to_last_success_s",), " s", True),
    ("elapsed", ("elapsed_s",), " s", True),
    ("handshakes/s (ok)", ("handshakes_per_s",), "", False),
    ("messages/s", ("messages_per_s",), "", False),
]


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return text + unit


def summary_table(results: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(r['label'])}</th>" for r in results)
    ratio = len(results) == 2
    rows = [f"<tr><th></th>{head}{'<th>B / A</th>' if ratio else ''}</tr>"]
    for label, path, unit, _lower in METRICS:
        values = [_get(r, *path) for r in results]
        if all(v is None for v in values):
            continue
        cells = "".join(f"<td>{_fmt(v, unit)}</td>" for v in values)
        if ratio:
            a, b = values
            cells += f"<td>{b / a:.2f}×</td>" if a and b is not None else "<td>–</td>"
        rows.append(f"<tr><td>{escape(label)}</td>{cells}</tr>")
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


def latency_over_time(results: list[dict[str, Any]]) -> str:
    series: list[Series] = []
    for i, r in enumerate(results):
        s = r["summary"]["series"]
        color = RUN_COLORS[i % len(RUN_COLORS)]
        prefix = f"{r['label']} " if len(results) > 1 else ""
        mid = [t + s["bucket_s"] / 2 for t in s["t"]]
        series.append(Series(f"{prefix}p99", mid, s.get("handshake_p99_ms", []), color))
        series.append(Series(f"{prefix}p50", mid, s.get("handshake_p50_ms", []), color, True))
    return plot.line_chart(
        "latency",
        "Handshake latency over time (successes)",
        series,
        "seconds since start",
        "ms (log)",
        log_y=True,
    )


def throughput_over_time(results: list[dict[str, Any]]) -> str:
    series: list[Series] = []
    for i, r in enumerate(results):
        s = r["summary"]["series"]
        color = RUN_COLORS[i % len(RUN_COLORS)]
        prefix = f"{r['label']} " if len(results) > 1 else ""
        mid = [t + s["bucket_s"] / 2 for t in s["t"]]
        series.append(Series(f"{prefix}handshakes/s", mid, s.get("ok_per_s", []), color))
        if any(s.get("messages_per_s", [])):
            series.append(Series(f"{prefix}messages/s", mid, s["messages_per_s"], color, True))
    return plot.line_chart(
        "throughput", "Throughput over time", series, "seconds since start", "per second"
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


def outcomes_over_time(result: dict[str, Any], index: int) -> str:
    s = result["summary"]["series"]
    return plot.stacked_bars(
        f"outcomes-{index}",
        f"Outcomes over time: {result['label']}",
        s["t"],
        s.get("outcomes", {}),
        s["bucket_s"],
    )


def render(results: list[dict[str, Any]]) -> str:
    """The whole page. One result: its report; two: side by side with B / A ratios."""
    if not results:
        raise ValueError("nothing to render")
    title = "wsgate storm: " + " vs ".join(r["label"] for r in results)
    plots = [latency_over_time(results), throughput_over_time(results)]
    plots += [outcomes_over_time(r, i) for i, r in enumerate(results)]
    plots.append(percentile_chart(results, "handshake_ms", "Handshake latency by percentile"))
    if any(r["summary"]["rtt_ms"]["count"] for r in results):
        plots.append(percentile_chart(results, "rtt_ms", "Echo round trip by percentile"))
    body = [
        f"<h1>{escape(title)}</h1>",
        *(_run_meta(r) for r in results),
        "<h2>Summary</h2>",
        summary_table(results),
        '<p class="meta">Latency figures are of successful handshakes; failures are '
        "counted by outcome. Time buckets: "
        + ", ".join(f"{r['summary']['series']['bucket_s']:g} s" for r in results)
        + ".</p>",
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
