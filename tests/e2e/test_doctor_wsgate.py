"""`wsgate doctor` through `wsgate serve` itself: healthy, a dead backend named by wsgate's
own cause code (X-Wsgate-Cause), and a gateway draining told apart from an idle cut."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.doctor.harness import codes, doctor, errors, finding
from tests.support.backends import ws_server
from tests.support.procs import Proc, free_port, running
from wsgate.findings import CATALOGUE

pytestmark = pytest.mark.e2e


@contextmanager
def wsgate_serve(
    tmp_path: Path, backend: int, pool_extra: str = "", server_extra: str = ""
) -> Iterator[int]:
    with wsgate_proc(tmp_path, backend, pool_extra, server_extra) as (port, _):
        yield port


@contextmanager
def wsgate_proc(
    tmp_path: Path, backend: int, pool_extra: str = "", server_extra: str = ""
) -> Iterator[tuple[int, Proc]]:
    port = free_port()
    argv = [
        sys.executable, "-m", "wsgate", "serve",
        "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{backend}",
    ]  # fmt: skip
    if pool_extra or server_extra:
        config = tmp_path / "wsgate.toml"
        config.write_text(
            f'[server]\nlisten = ["127.0.0.1:{port}"]\n{server_extra}\n'
            f'[pools.app]\nbackends = ["127.0.0.1:{backend}"]\n{pool_extra}\n'
        )
        argv = [sys.executable, "-m", "wsgate", "serve", "--config", str(config)]
    with running(argv, tmp_path / "wsgate.log", port) as proc:
        yield port, proc


def test_healthy_through_wsgate(tmp_path: Path) -> None:
    with ws_server() as backend, wsgate_serve(tmp_path, backend) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--echo", "hello")
    assert status == 0
    assert codes(report) == ["healthy"]
    assert errors(report) == []


def test_wsgate_dead_backend_is_named_by_its_own_cause_code(tmp_path: Path) -> None:
    with wsgate_serve(tmp_path, free_port()) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "20")
    assert status == 1
    assert codes(report) == ["upstream_connect_refused"]
    found = finding(report, "upstream_connect_refused")
    assert found["summary"] == CATALOGUE["upstream_connect_refused"].summary
    assert found["fix"] == CATALOGUE["upstream_connect_refused"].fix
    assert "from wsgate itself" in found["evidence"]
    assert "X-Wsgate-Cause: upstream_connect_refused" in found["evidence"]


def test_wsgate_tunnel_idle_timeout_is_idle_cut_by_close_frame(tmp_path: Path) -> None:
    with (
        ws_server(ping_interval=None) as backend,
        wsgate_serve(tmp_path, backend, "tunnel_idle_timeout_s = 2") as port,
    ):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--idle", "10")
    assert status == 1
    assert errors(report) == ["idle_cut"]
    assert "by a close frame 1001 'idle timeout'" in finding(report, "idle_cut")["evidence"]


def test_wsgate_draining_is_the_server_going_away_not_an_idle_cut(tmp_path: Path) -> None:
    # The doctor holds a WebSocket quiet through the gateway; the gateway gets SIGTERM
    # (by PID), drains for 1 s, then closes the tunnel with 1001 "server shutting down".
    with (
        ws_server(ping_interval=None) as backend,
        wsgate_proc(tmp_path, backend, server_extra="drain_timeout_s = 1") as (port, gateway),
    ):
        argv = [sys.executable, "-m", "wsgate", "doctor", f"ws://127.0.0.1:{port}/"]
        probe = subprocess.Popen(
            [*argv, "--idle", "30", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while '"status":101' not in gateway.log() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert '"status":101' in gateway.log(), gateway.log()
            time.sleep(0.5)  # the ping layer is done: the doctor is holding the line quiet
            gateway.stop()
            out, err = probe.communicate(timeout=60)
        finally:
            if probe.poll() is None:
                probe.kill()
                probe.wait(10)
    assert probe.returncode == 1, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert codes(report) == ["server_going_away"]
    found = finding(report, "server_going_away")
    assert "close frame 1001 (going away) 'server shutting down'" in found["evidence"]
    assert "drain_timeout_s" in found["fix"]
    assert "idle_cut" not in codes(report)
