"""bench/backend.py runs from any directory by its path (and as `-m bench.backend` from the
repository root), as the README's storm commands ask."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.procs import free_port, wait_for_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("how", ["by path from elsewhere", "as a module from the root"])
def test_backend_starts_and_echoes(how: str, tmp_path: Path) -> None:
    port = free_port()
    args = ["--port", str(port), "--work-ms", "5", "--limit", "2"]
    if how == "as a module from the root":
        argv, cwd = [sys.executable, "-m", "bench.backend", *args], ROOT
    else:
        argv, cwd = [sys.executable, str(ROOT / "bench" / "backend.py"), *args], tmp_path
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_port(port)
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=10) as ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "ping"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert f"backend ready on 127.0.0.1:{port}" in out
