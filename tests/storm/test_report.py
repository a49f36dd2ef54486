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
        "successes",
        "throughput",
        "outcomes-0",
        "percentiles-handshake_ms",
        "percentiles-outcome_ms",
        "percentiles-rtt_ms",
    }
    lines = {
        line["data-series"]: int(line["data-points"] or 0)
        for line in svgs.plots["latency"]["polyline"]
    }
    # 40 handshakes over 4 s in 0.5 s buckets; the 3 failures all end in one bucket.
    assert lines == {"101 p99": 8, "101 p50": 8, "failed p99": 1}
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
    assert series == {"nginx 101 p99", "nginx 101 p50", "wsgate 101 p99", "wsgate 101 p50"}
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


def failures_only() -> dict[str, Any]:
    """A run where nothing succeeded: fast 503s with Retry-After, then timeouts."""
    result = make_result("refused", 1.0)
    rec = Recorder(bucket_s=0.5)
    for i in range(30):
        rec.record_start()
        rec.record_handshake(
            done_s=0.01 * i,
            latency_s=0.005,
            outcome="503 overloaded_queue_full",
            retry_after_s=3 + i % 4,
        )
    for _ in range(10):
        rec.record_start()
        rec.record_handshake(done_s=2.0, latency_s=2.0, outcome=stats.TIMEOUT)
    result["summary"] = stats.summary(rec, elapsed_s=2.05)
    return result


def test_a_run_of_failures_plots_every_outcome() -> None:
    html = report_html.render([failures_only()])
    svgs = parse(html)
    latency = {line["data-series"] for line in svgs.plots["latency"]["polyline"]}
    assert latency == {"failed p99"}
    curves = {line["data-series"] for line in svgs.plots["percentiles-outcome_ms"]["polyline"]}
    assert curves == {"503 overloaded_queue_full", "timeout"}
    bars = [r for r in svgs.plots["outcomes-0"]["rect"] if r.get("class") == "bar"]
    assert {b["data-outcome"] for b in bars} == {"503 overloaded_queue_full", "timeout"}
    assert sum(int(b["data-count"] or 0) for b in bars) == 40
    # The time to each outcome, in a table with the terminal's percentiles.
    assert "<h2>Time to each outcome</h2>" in html
    assert "<th>p99.9</th>" in html
    assert "<td>timeout</td><td>10</td><td>2,001 ms</td>" in html  # HDR: 0.1 % resolution


def test_retry_after_values_are_shown() -> None:
    html = report_html.render([failures_only()])
    svgs = parse(html)
    bars = [r for r in svgs.plots["retry-after-0"]["rect"] if r.get("class") == "bar"]
    assert {(b["data-value"], b["data-count"]) for b in bars} == {
        ("3", "8"),
        ("4", "8"),
        ("5", "7"),
        ("6", "7"),
    }
    assert "<tr><td>Retry-After received</td><td>30</td></tr>" in html
    assert "<tr><td>Retry-After max</td><td>6 s</td></tr>" in html


def test_html_rows_are_the_terminals() -> None:
    from wsgate.storm import report_text

    for result in (make_result("a", 10.0, failures=3, rtts=20), failures_only()):
        html = report_html.render([result])
        for name, _value in report_text.rows(result):
            if name.split()[0] in ("handshake", "round", "time", "Retry-After"):
                assert f"<td>{name}</td>" in html, name


class Legends(HTMLParser):
    """The y of every legend text and the bottom of each plot area."""

    def __init__(self) -> None:
        super().__init__()
        self.in_legend = False
        self.legend_ys: list[float] = []
        self.axes_bottoms: list[float] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "g" and found.get("class") == "legend":
            self.in_legend = True
        elif tag == "text" and self.in_legend:
            self.legend_ys.append(float(found["y"] or 0))
        elif tag == "rect" and found.get("class") == "axes":
            self.axes_bottoms.append(float(found["y"] or 0) + float(found["height"] or 0))

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            self.in_legend = False


def test_legends_sit_below_the_data() -> None:
    parser = Legends()
    parser.feed(report_html.render([make_result("a", 10.0, failures=3), failures_only()]))
    assert parser.legend_ys and parser.axes_bottoms
    # Below the plot area and its x-axis label.
    assert min(parser.legend_ys) > max(parser.axes_bottoms) + 30


def test_runs_side_by_side_share_their_scales() -> None:
    small = make_result("small", 10.0)
    big = failures_only()
    html = report_html.render([small, big])
    charts = [
        re.search(rf'<svg[^>]*data-plot="outcomes-{i}".*?</svg>', html, re.DOTALL) for i in (0, 1)
    ]
    tick_sets = [re.findall(r'class="tick">([^<]+)<', c.group(0)) for c in charts if c]
    assert len(tick_sets) == 2
    assert tick_sets[0] == tick_sets[1]
    # The same outcome has the same color in both runs.
    both = report_html.outcome_colors([small, big])
    assert len(set(both.values())) == len(both)


def test_ideal_line_when_capacity_is_known() -> None:
    result = make_result("slow", 10.0)
    first = parse(report_html.render([result])).plots["successes"]["polyline"][0]
    series = first.get("data-series", "")
    assert series is not None and "ideal" not in series
    result["ideal"] = {
        "capacity_per_s": 20.0,
        "time_to_last_success_s": 2.0,
        "t": [0.0, 1.0, 2.0, 3.0, 4.0],
        "ok_total": [0.0, 20.0, 40.0, 40.0, 40.0],
    }
    html = report_html.render([result])
    lines = {line["data-series"]: line for line in parse(html).plots["successes"]["polyline"]}
    assert set(lines) == {"101 so far", "ideal at 20/s"}
    assert lines["ideal at 20/s"]["stroke-dasharray"] == "6 3"
    assert "ideal (--capacity)" in html


def test_last_partial_bucket_is_not_a_drop() -> None:
    rec = Recorder(bucket_s=1.0)
    for i in range(30):  # 10 a second for 3 s, then the run ends at 3.5 s
        rec.record_handshake(done_s=i / 10, latency_s=0.01, outcome=OK)
    for i in range(5):
        rec.record_handshake(done_s=3.0 + i / 10, latency_s=0.01, outcome=OK)
    s = stats.series(rec, end_s=3.5)
    assert s["width_s"] == [1.0, 1.0, 1.0, 0.5]
    assert s["ok_per_s"] == [10.0, 10.0, 10.0, 10.0]
    svg = plot.stacked_bars("b", "b", s["t"], s["outcomes"], s["width_s"])
    rates = [
        float(r["data-rate"] or 0) for r in parse(svg).plots["b"]["rect"] if r.get("data-rate")
    ]
    assert rates == [10.0, 10.0, 10.0, 10.0]


def test_runs_of_the_same_storm_share_one_ideal() -> None:
    a, b = make_result("direct", 10.0), make_result("gateway", 5.0)
    for result, end in ((a, 4.0), (b, 2.5)):
        result["ideal"] = {
            "capacity_per_s": 20.0,
            "time_to_last_success_s": 2.0,
            "t": [0.0, 1.0, 2.0, end],
            "ok_total": [0.0, 20.0, 40.0, 40.0],
        }
    lines = parse(report_html.render([a, b])).plots["successes"]["polyline"]
    assert sorted(line["data-series"] or "" for line in lines) == [
        "direct 101 so far",
        "gateway 101 so far",
        "ideal at 20/s",
    ]
    b["ideal"] = dict(a["ideal"], capacity_per_s=10.0, time_to_last_success_s=4.0)
    lines = parse(report_html.render([a, b])).plots["successes"]["polyline"]
    assert {"direct ideal at 20/s", "gateway ideal at 10/s"} <= {
        line["data-series"] for line in lines
    }
