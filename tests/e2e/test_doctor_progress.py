"""`wsgate doctor --idle --burst` as a real process: with stderr on a terminal (a pty) it
shows how far the idle hold and the burst have got; with stderr on a pipe it prints
nothing extra, and stdout carries the same report either way."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading

import pytest

from tests.support.backends import ws_server

pytestmark = pytest.mark.e2e

ARGS = ("--idle", "1.5", "--burst", "4", "--timeout", "20", "--json")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _argv(port: int) -> list[str]:
    return [sys.executable, "-m", "wsgate", "doctor", f"ws://127.0.0.1:{port}/", *ARGS]


def _env() -> dict[str, str]:
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    for name in ("NO_COLOR", "TERM_PROGRAM", "FORCE_COLOR", "CI", "GITHUB_ACTIONS"):
        env.pop(name, None)
    return env


def _drain(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the child has closed its end
            return
        if not chunk:
            return
        into.append(chunk)


def test_progress_on_a_terminal() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, chunks), daemon=True)
    try:
        with ws_server() as port:
            proc = subprocess.Popen(
                _argv(port), stdout=subprocess.PIPE, stderr=slave, env=_env(), text=True
            )
            os.close(slave)
            slave = -1
            reader.start()
            stdout, _ = proc.communicate(timeout=120)
        reader.join(20)
    finally:
        if slave != -1:
            os.close(slave)
        os.close(master)
    shown = _ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert proc.returncode == 0, shown
    assert "Traceback" not in shown
    assert "idle hold" in shown and "/1.5 s" in shown
    assert "burst" in shown and "/4 handshakes" in shown
    assert json.loads(stdout)["ok"] is True


def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    with ws_server() as port:
        done = subprocess.run(
            _argv(port), capture_output=True, text=True, env=_env(), timeout=120, check=False
        )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    report = json.loads(done.stdout)
    assert report["ok"] is True
