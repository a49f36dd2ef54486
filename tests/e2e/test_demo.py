"""`wsgate demo` as a user runs it: the banner's command works as printed, and Ctrl-C with
WebSockets open stops it quietly (exit 0, no traceback)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.procs import free_port, wait_for_port

pytestmark = pytest.mark.e2e


def test_ctrl_c_with_websockets_open_stops_without_a_traceback(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    argv = [sys.executable, "-m", "wsgate", "demo", "--port", str(port)]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        demo = subprocess.Popen(
            [*argv, "--admin-port", str(admin)],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_port(port)
        with (
            connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10) as echo,
            connect(f"ws://127.0.0.1:{port}/chat", open_timeout=10) as chat,
        ):
            echo.send("hello")
            assert echo.recv(timeout=10) == "hello"
            assert "joined" in str(chat.recv(timeout=10))
            os.kill(demo.pid, signal.SIGINT)  # what Ctrl-C sends
            status = demo.wait(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
    errors = err.read_text()
    assert status == 0, errors
    assert "Traceback" not in errors
    assert "connection handler failed" not in errors
    assert "wsgate demo: stopping" in errors


def test_the_banner_prints_a_python_that_has_websockets(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    log = tmp_path / "demo.out"
    argv = [sys.executable, "-m", "wsgate", "demo", "--port", str(port)]
    with log.open("wb") as stdout:
        demo = subprocess.Popen(
            [*argv, "--admin-port", str(admin)],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_port(port)
        deadline = time.monotonic() + 10
        while "echo socket" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(x for x in log.read_text().splitlines() if "echo socket" in x)
        command = line.split("(try: ", 1)[1].rstrip(")")
        assert command.startswith(shlex.quote(sys.executable) + " -m websockets ")
        # Run it as printed: the interactive client connects, and ends at EOF on stdin.
        result = subprocess.run(
            shlex.split(command), input="", capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        assert f"Connected to ws://127.0.0.1:{port}/echo" in result.stdout
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(10)
