"""`wsgate demo` prints the dashboard's address; `demo --storm` fills the slow pool's
queue and turns handshakes away within seconds, which /api/state and /metrics show."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.admin import get_json, scrape, value, wait_until
from tests.support.procs import free_port, running

pytestmark = pytest.mark.e2e


def test_demo_storm_shows_queueing_and_shedding(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    argv = [sys.executable, "-m", "wsgate", "demo", "--port", str(port)]
    argv += ["--admin-port", str(admin), "--storm"]
    with running(argv, tmp_path / "demo.log", admin) as proc:
        wait_until(lambda: "storming" in proc.log())
        assert f"dashboard:   http://127.0.0.1:{admin}/" in proc.log()
        state = wait_until(
            lambda: (
                (s := get_json(admin, "/api/state")[1])
                and any(e["cause"].startswith("overloaded_queue") for e in s["errors"])
                and s
            ),
            timeout_s=30,
        )
        slow = state["pools"]["slow"]
        assert slow["queue_size"] == 50
        m = scrape(admin)
        assert value(m, "wsgate_admission_decisions_total", pool="slow", decision="queued") > 0
        assert value(m, "wsgate_upgrades_total", pool="slow") > 0
        refused = value(m, "wsgate_errors_total", pool="slow")
        assert refused > 0
        proc.popen.terminate()
        assert proc.popen.wait(timeout=30) == 0
