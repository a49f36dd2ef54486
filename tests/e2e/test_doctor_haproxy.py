"""`wsgate doctor` through a real HAProxy 2.6 on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from tests.doctor.harness import codes, doctor, errors, finding
from tests.support.backends import ws_server
from tests.support.procs import free_port, haproxy


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


def test_haproxy_health_check_marks_backend_down(tmp_path: Path) -> None:
    # A dead server with health checks: HAProxy marks it DOWN and answers 503 at once.
    port = free_port()
    check = " check inter 200ms fall 1 rise 1"
    with haproxy(config(port, free_port(), check=check), tmp_path, port):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "20")
    assert status == 1
    assert codes(report) == ["gateway_upstream_unreachable"]
    assert "HAProxy has no server UP" in finding(report, "gateway_upstream_unreachable")["evidence"]


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
