"""`wsgate doctor` through a real HAProxy 2.6 on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.doctor.harness import codes, doctor, errors, finding
from tests.support.backends import ws_server
from tests.support.procs import free_port, haproxy

pytestmark = pytest.mark.e2e


def config(port: int, backend: int, tunnel: str = "1h", check: str = "") -> str:
    return f"""
global
    maxconn 256

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout tunnel {tunnel}

frontend web
    bind 127.0.0.1:{port}
    default_backend app

backend app
    server app1 127.0.0.1:{backend}{check}
"""


def test_healthy_through_haproxy(tmp_path: Path) -> None:
    port = free_port()
    with ws_server() as backend, haproxy(config(port, backend), tmp_path, port):
        status, report = doctor(f"ws://127.0.0.1:{port}/")
    assert status == 0
    assert codes(report) == ["healthy"]


def test_haproxy_dead_backend(tmp_path: Path) -> None:
    port = free_port()
    with haproxy(config(port, free_port()), tmp_path, port):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "20")
    assert status == 1
    assert codes(report) == ["gateway_upstream_unreachable"]
    found = finding(report, "gateway_upstream_unreachable")
    assert "from HAProxy itself" in found["evidence"]
    assert "No server is available" in found["evidence"]
    assert "health check" in found["fix"]


def test_haproxy_http_check_marks_websocket_only_backend_down(tmp_path: Path) -> None:
    # The backend is up, but a plain GET health check gets its 426, so HAProxy marks it
    # DOWN and answers 503 "No server is available" to every WebSocket.
    port = free_port()
    with ws_server() as backend:
        cfg = config(port, backend, check=" check inter 200ms fall 1 rise 1").replace(
            "backend app\n", "backend app\n    option httpchk GET /\n"
        )
        with haproxy(cfg, tmp_path, port) as proc:
            deadline = time.monotonic() + 20
            while "is DOWN" not in proc.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "is DOWN" in proc.log()
            status, report = doctor(
                f"ws://127.0.0.1:{port}/", "--connect-to", f"127.0.0.1:{backend}"
            )
    assert status == 1
    assert codes(report) == ["gateway_upstream_unreachable"]
    found = finding(report, "gateway_upstream_unreachable")
    assert "HAProxy has no server UP" in found["evidence"]
    assert "answered 101" in found["evidence"]  # the backend itself is fine
    assert "option httpchk" in found["fix"]


def test_haproxy_tunnel_timeout_is_idle_cut(tmp_path: Path) -> None:
    port = free_port()
    with (
        ws_server(ping_interval=None) as backend,
        haproxy(config(port, backend, tunnel="2s"), tmp_path, port),
    ):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--idle", "10")
    assert status == 1
    assert errors(report) == ["idle_cut"]
    found = finding(report, "idle_cut")
    # HAProxy adds no Server header, so the doctor lists the settings that fit.
    assert "cut after" in found["evidence"]


def test_haproxy_mode_tcp_with_a_dead_backend_is_named_in_the_fix(tmp_path: Path) -> None:
    # A TCP-level proxy accepts, fails to reach its backend (HAProxy retries 3 times, a
    # second apart) and closes without a byte: the same as a server hanging up, except
    # that a connection that sends nothing is closed too.
    port = free_port()
    cfg = config(port, free_port()).replace("mode http", "mode tcp")
    with haproxy(cfg, tmp_path, port):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "20")
    assert status == 1
    assert codes(report) == ["connection_dropped"]
    found = finding(report, "connection_dropped")
    assert "a second connection that sent nothing was closed too" in found["evidence"]
    assert "TCP-level proxy" in found["fix"] and "mode tcp" in found["fix"]
    quiet = [row for row in report["layers"] if row["name"] == "quiet"]
    assert len(quiet) == 1 and not quiet[0]["ok"]
