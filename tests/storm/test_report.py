from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from wsgate.storm import plot, report_html, stats
from wsgate.storm.runner import client_verdict
from wsgate.storm.stats import OK, Recorder


def make_result(label: str, slow_ms: float, failures: int = 0, rtts: int = 0) -> dict[str, Any]:
    rec = Recorder(bucket_s=0.5)
    for i in range(40):
        rec.record_start()
        rec.record_handshake(done_s=i * 0.1, latency_s=(slow_ms + i) / 1000.0, outcome=OK)
    for i in range(failures):
        rec.record_start()
        rec.record_handshake(
            done_s=3.0 + i * 0.1, latency_s=3.0, outcome="502 upstream_closed_early"
        )
    for i in range(rtts):
        rec.record_rtt(done_s=i * 0.05, rtt_s=0.001 * (1 + i % 5))
    return {
        "kind": "wsgate-storm-result",
        "version": 1,
        "label": label,
        "url": "ws://127.0.0.1:9/",
        "started_at": "2026-01-01T00:00:00+00:00",
        "config": {
            "arrival": {"mode": "burst", "count": 40 + failures},
            "workers": 1,
            "session": {"messages": 0, "size": 64, "interval_s": 0, "hold_s": 0},
            "timeout_s": 60.0,
        },
        "summary": stats.summary(rec, elapsed_s=4.0),
        "client": client_verdict(
            [{"worker": 0, "cpu_s": 1.0, "wall_s": 4.0, "cpu_util": 0.25, "max_start_lag_ms": 0}], 2
        ),
    }


class Svgs(HTMLParser):
    """Collects each plot and what it draws."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: dict[str, dict[str, list[dict[str, str | None]]]] = {}
        self.current: str | None = None
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "svg":
            self.current = found.get("data-plot")
            assert self.current is not None
            self.plots[self.current] = {"polyline": [], "rect": []}
        elif self.current and tag in ("polyline", "rect"):
            self.plots[self.current][tag].append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.current = None


def parse(html: str) -> Svgs:
    parser = Svgs()
    parser.feed(html)
    return parser


def test_single_report_has_every_plot_with_data() -> None:
    html = report_html.render([make_result("direct", 10.0, failures=3, rtts=20)])
    svgs = parse(html)
    assert set(svgs.plots) == {
        "latency",
        "throughput",
        "outcomes-0",
        "percentiles-handshake_ms",
        "percentiles-rtt_ms",
    }
    lines = {
        line["data-series"]: int(line["data-points"] or 0)
        for line in svgs.plots["latency"]["polyline"]
    }
    assert lines == {"p99": 8, "p50": 8}  # 40 handshakes over 4 s in 0.5 s buckets
    bars = [r for r in svgs.plots["outcomes-0"]["rect"] if r.get("class") == "bar"]
    assert sum(int(b["data-count"] or 0) for b in bars) == 43
    assert {b["data-outcome"] for b in bars} == {"101", "502 upstream_closed_early"}
    curve = svgs.plots["percentiles-handshake_ms"]["polyline"][0]
    assert int(curve["data-points"] or 0) > 10
    assert "outcome 502 upstream_closed_early" in html


def test_report_is_self_contained() -> None:
    html = report_html.render([make_result("direct", 10.0)])
    assert "<script" not in html
    assert not re.search(r"(src|href)\s*=", html)
    # The only URL is the SVG namespace, which is a name, not a fetch.
    assert set(re.findall(r"https?://[^\s\"'<]+", html)) == {"http://www.w3.org/2000/svg"}


def test_labels_are_escaped() -> None:
    html = report_html.render([make_result("<b>x</b>", 10.0)])
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_compare_shows_both_runs_and_ratios() -> None:
    a, b = make_result("nginx", 10.0), make_result("wsgate", 30.0)
    html = report_html.render([a, b])
    svgs = parse(html)
    assert {"outcomes-0", "outcomes-1"} <= set(svgs.plots)
    series = {line["data-series"] for line in svgs.plots["latency"]["polyline"]}
    assert series == {"nginx p99", "nginx p50", "wsgate p99", "wsgate p50"}
    p50_a = a["summary"]["handshake_ms"]["p50"]
    p50_b = b["summary"]["handshake_ms"]["p50"]
    assert f"<td>{p50_b / p50_a:.2f}×</td>" in html
    assert "<th>B / A</th>" in html


def test_empty_run_renders_placeholders() -> None:
    empty = make_result("none", 1.0)
    empty["summary"] = stats.summary(Recorder(bucket_s=0.5), elapsed_s=0.0)
    html = report_html.render([empty])
    assert html.count("no data") >= 3
    with pytest.raises(ValueError):
        report_html.render([])


def test_client_verdict_flags_a_busy_worker() -> None:
    busy = client_verdict(
        [
            {"worker": 0, "cpu_s": 3.8, "wall_s": 4.0, "cpu_util": 0.95, "max_start_lag_ms": 250.0},
            {"worker": 1, "cpu_s": 1.0, "wall_s": 4.0, "cpu_util": 0.25, "max_start_lag_ms": 0.0},
        ],
        cores=2,
    )
    assert busy["cpu_bound"] is True
    assert busy["cpu_s"] == 4.8
    assert "worker 0 used 95% of a core" in busy["notes"][0]
    assert "250 ms behind schedule" in busy["notes"][1]
    calm = client_verdict([{"worker": 0, "cpu_s": 1, "wall_s": 4, "cpu_util": 0.84}], cores=2)
    assert calm["cpu_bound"] is False and calm["notes"] == []


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0, 112, [0, 50, 100, 150]),
        (0, 100, [0, 20, 40, 60, 80, 100]),
        (0, 2500, [0, 500, 1000, 1500, 2000, 2500]),
    ],
)
def test_nice_ticks_cover_the_data(low: float, high: float, ticks: list[float]) -> None:
    assert plot.nice_ticks(low, high) == ticks


def test_log_ticks() -> None:
    assert plot.log_ticks(1, 100) == [1, 2, 5, 10, 20, 50, 100]


def test_progress_table_sums_workers() -> None:
    from rich.console import Console

    from wsgate.storm.runner import progress_table

    table = progress_table(
        {
            0: {"started": 10, "in_flight": 2, "outcomes": {"101": 7, "refused": 1}},
            1: {"started": 5, "in_flight": 1, "outcomes": {"101": 4}},
        },
        elapsed_s=1.5,
    )
    console = Console(width=100, record=True)
    console.print(table)
    text = console.export_text()
    assert "1.5 s" in text
    header, row = [line for line in text.splitlines() if "│" in line or "┃" in line][:2]
    assert header.split() == [
        "┃",
        "started",
        "┃",
        "in",
        "flight",
        "┃",
        "done",
        "┃",
        "101",
        "┃",
        "refused",
        "┃",
    ]
    assert [c.strip() for c in row.split("│")[1:-1]] == ["15", "3", "12", "11", "1"]


def test_text_compare_keeps_each_runs_row_order() -> None:
    from rich.console import Console

    from wsgate.storm import report_text

    console = Console(width=120, record=True)
    report_text.print_compare([make_result("a", 10.0), make_result("b", 10.0, rtts=5)], console)
    names = [
        line.split("│")[1].strip() for line in console.export_text().splitlines() if "│" in line
    ]
    assert names.index("handshake max") < names.index("round trip p50") < names.index("elapsed")


def test_a_missing_value_breaks_the_line() -> None:
    svg = plot.line_chart(
        "gaps",
        "gaps",
        [plot.Series("p99", [0, 1, 2, 3, 4, 5], [1.0, 2.0, None, 3.0, None, 4.0], "#000")],
        "s",
        "ms",
    )
    svgs = parse(svg)
    assert [line["data-points"] for line in svgs.plots["gaps"]["polyline"]] == ["2", "1", "1"]
    assert svg.count("<circle") == 2


def test_an_interrupted_run_says_so() -> None:
    result = make_result("cut", 10.0)
    assert "interrupted" not in report_html.render([result])
    result["interrupted"] = True
    assert "interrupted (Ctrl-C)" in report_html.render([result])
