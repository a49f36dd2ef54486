"""The storm's HTML report, opened in real headless Chromium: it renders and its plots
hold data, failures included. Screenshots go to the test's tmp dir and to artifacts/ at the
repo root."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from http import HTTPStatus
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tests.support.backends import ws_server
from tests.support.procs import free_port

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def chromium(tmp_path: Path, page: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1280,2000",
            *mode,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Plots(HTMLParser):
    """Per plot in the rendered DOM: points in each line and the number of bars."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, list[int]] = {}
        self.bars: dict[str, int] = {}
        self.series: dict[str, set[str]] = {}
        self.outcomes: dict[str, dict[str, int]] = {}
        self.current = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "svg":
            self.current = found.get("data-plot") or ""
            self.lines[self.current] = []
            self.bars[self.current] = 0
            self.series[self.current] = set()
            self.outcomes[self.current] = {}
        elif tag == "polyline" and self.current:
            points = (found.get("points") or "").split()
            assert len(points) == int(found.get("data-points") or -1)
            self.lines[self.current].append(len(points))
            self.series[self.current].add(found.get("data-series") or "")
        elif tag == "rect" and found.get("class") == "bar" and self.current:
            self.bars[self.current] += 1
            outcome = found.get("data-outcome")
            if outcome is not None:
                counts = self.outcomes[self.current]
                counts[outcome] = counts.get(outcome, 0) + int(found.get("data-count") or 0)


def run_storm(tmp_path: Path, port: int, name: str, *args: str, extra_url: str = "") -> Path:
    out = tmp_path / f"{name}.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsgate",
            "storm",
            "--quiet",
            f"ws://127.0.0.1:{port}/",
            *([extra_url] if extra_url else []),
            "--label",
            name,
            "--json",
            str(out),
            "--html",
            str(tmp_path / f"{name}.html"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def check_in_chromium(tmp_path: Path, page: Path, expect: set[str]) -> Plots:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")
    dom = chromium(tmp_path, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<svg" in dom.stdout
    plots = Plots()
    plots.feed(dom.stdout)
    assert expect <= set(plots.lines)
    shot = tmp_path / f"{page.stem}.png"
    done = chromium(tmp_path, page, f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a blank 1280x2000 page compresses to a few KB
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / f"storm-{page.stem}.png")
    return plots


def test_report_renders_with_data_in_chromium(tmp_path: Path) -> None:
    with ws_server() as port:
        result = run_storm(
            tmp_path, port, "single", "--rate", "50/s", "--duration", "1s", "--messages", "3"
        )
    summary = json.loads(result.read_text())["summary"]
    assert summary["outcomes"] == {"101": 50}
    plots = check_in_chromium(
        tmp_path,
        tmp_path / "single.html",
        {"latency", "throughput", "outcomes-0", "percentiles-handshake_ms", "percentiles-rtt_ms"},
    )
    # Lines may break at an empty time bucket on a slow box: count points, not lines.
    assert sum(plots.lines["latency"]) >= 2
    assert sum(plots.lines["throughput"]) >= 2
    assert plots.bars["outcomes-0"] >= 2
    assert sum(plots.lines["percentiles-handshake_ms"]) >= 5
    assert sum(plots.lines["percentiles-rtt_ms"]) >= 5


def test_compare_page_renders_in_chromium(tmp_path: Path) -> None:
    with ws_server() as port:
        a = run_storm(tmp_path, port, "a", "--burst", "30")
        b = run_storm(
            tmp_path, port, "b", "--concurrency", "3", "--count", "30", "--duration", "20s"
        )
    page = tmp_path / "compare.html"
    done = subprocess.run(
        [sys.executable, "-m", "wsgate", "storm", "--compare", str(a), str(b), "--html", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "B / A" in page.read_text()
    plots = check_in_chromium(tmp_path, page, {"latency", "outcomes-0", "outcomes-1"})
    assert len(plots.lines["latency"]) >= 4  # p50 and p99 of each run
    assert plots.bars["outcomes-0"] >= 1 and plots.bars["outcomes-1"] >= 1


def test_report_of_a_run_with_failures_plots_every_outcome_in_chromium(tmp_path: Path) -> None:
    """Half the storm goes to a port where nothing listens (refused at once); the other
    half to a backend that turns every other handshake away with a 503 and Retry-After,
    as a full wsgate queue does. Every outcome must be drawn, with its time to outcome."""
    turns = itertools.count()

    def every_other(conn: ServerConnection, request: Request) -> Response | None:
        if next(turns) % 2:
            return None
        response = conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "queue full\n")
        response.headers["Retry-After"] = "7"
        response.headers["X-Wsgate-Cause"] = "overloaded_queue_full"
        return response

    dead = f"ws://127.0.0.1:{free_port()}/"
    with ws_server(process_request=every_other) as port:
        result = run_storm(
            tmp_path, port, "failures", "--burst", "40", "--capacity", "100/s", extra_url=dead
        )
    data = json.loads(result.read_text())
    outcomes = {"101": 10, "503 overloaded_queue_full": 10, "refused": 20}
    assert data["summary"]["outcomes"] == outcomes
    assert data["summary"]["failed_ms"]["count"] == 30
    assert data["ideal"]["time_to_last_success_s"] == 0.4
    plots = check_in_chromium(
        tmp_path,
        tmp_path / "failures.html",
        {"latency", "successes", "outcomes-0", "percentiles-outcome_ms"},
    )
    # Every outcome is plotted: as bars over time, and by its time to outcome.
    assert plots.outcomes["outcomes-0"] == outcomes
    assert plots.series["percentiles-outcome_ms"] == set(outcomes)
    assert "failed p99" in plots.series["latency"]
    assert plots.series["successes"] == {"101 so far", "ideal at 100/s"}
