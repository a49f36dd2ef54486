"""A tiny run of the benchmark harness: its nginx and HAProxy configs start and proxy
WebSocket handshakes and echoes. Sizes are tiny and nothing here looks at speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import HAPROXY, NGINX

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_bench_harness_runs_every_proxy(tmp_path: Path) -> None:
    if not (Path(NGINX).exists() and Path(HAPROXY).exists()):
        pytest.skip("nginx or HAProxy missing (scripts/setup.sh installs them)")
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.run", "--scenarios", "s1fast,s3",
            "--targets", "direct,nginx,haproxy", "--s1-n", "20", "--s3-messages", "3",
            "--out", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=280, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    [report] = tmp_path.glob("*.json")
    results = json.loads(report.read_text())["results"]
    for name in ("direct", "nginx", "haproxy"):
        assert results["S1 fast"][name]["ok"] == 20, results["S1 fast"][name]
        assert results["S1 fast"][name]["failed"] == 0
        assert results["S3"][name]["errors"] == 0, results["S3"][name]
        assert results["S3"][name]["rtt_p99_ms"] is not None
    assert results["S3"]["nginx"]["target_cpu_us_per_round_trip"] is not None
    assert results["S3"]["direct"]["target_cpu_us_per_round_trip"] is None
    table = next(tmp_path.glob("*.md")).read_text()
    assert "| S1 fast | 101 of N | 20 | 20 | 20 |" in table
