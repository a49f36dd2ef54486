"""bench/floor_proxy.py, the benchmark's `floor` target: WebSockets open through it and
echo, handshakes take its two backends in turn (one here is a closed port, so every
second handshake fails), and a backend that shuts down closes its clients' side too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from tests.support.procs import free_port, wait_for_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 10.0


@contextlib.contextmanager
def started(argv: list[str], port: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_port(port)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=WAIT_S)


def test_the_floor_proxy_carries_websockets_and_takes_backends_in_turn() -> None:
    backend, nothing, port = free_port(), free_port(), free_port()
    backend_argv = [sys.executable, "-m", "bench.backend", "--port", str(backend)]
    proxy_argv = [sys.executable, "-m", "bench.floor_proxy", "--port", str(port)]
    proxy_argv += ["--backend1", str(backend), "--backend2", str(nothing)]
    with started(backend_argv, backend) as backend_proc, started(proxy_argv, port):
        outcomes = []
        for n in range(4):
            try:
                with connect(f"ws://127.0.0.1:{port}/", open_timeout=WAIT_S) as ws:
                    ws.send(f"hello {n}")
                    outcomes.append(ws.recv(timeout=WAIT_S))
            except (InvalidHandshake, ConnectionClosed, OSError):
                outcomes.append("refused")  # the closed port's turn: the proxy hangs up
        assert outcomes == ["hello 0", "refused", "hello 2", "refused"]

        with connect(f"ws://127.0.0.1:{port}/", open_timeout=WAIT_S) as ws:
            ws.send("before")
            assert ws.recv(timeout=WAIT_S) == "before"
            os.kill(backend_proc.pid, signal.SIGTERM)  # the backend shuts down
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=WAIT_S)
