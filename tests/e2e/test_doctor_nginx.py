"""`wsgate doctor` through a real nginx on 127.0.0.1: each broken setup gives its code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from tests.doctor.harness import codes, doctor, doctor_text, errors, finding, layer
from tests.support.backends import ws_server
from tests.support.procs import free_port, nginx

pytestmark = pytest.mark.e2e

UPGRADE = """
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";"""


def site(port: int, backend: int, extra: str = UPGRADE) -> str:
    return f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{backend};{extra}
        }}
    }}"""


def test_healthy_through_nginx(tmp_path: Path) -> None:
    port = free_port()
    with ws_server() as backend, nginx(site(port, backend), tmp_path, port):
        status, report = doctor(f"ws://127.0.0.1:{port}/")
    assert status == 0
    assert codes(report) == ["healthy"]
    assert errors(report) == []


@pytest.mark.parametrize(
    ("extra", "status_code"),
    [("", "505"), ("\n            proxy_http_version 1.1;", "426")],
    ids=["http10-upstream", "no-upgrade-headers"],
)
def test_nginx_without_upgrade_headers(tmp_path: Path, extra: str, status_code: str) -> None:
    port = free_port()
    with ws_server() as backend, nginx(site(port, backend, extra), tmp_path, port):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--connect-to", f"127.0.0.1:{backend}")
    assert status == 1
    assert codes(report) == ["upgrade_not_forwarded"]
    found = finding(report, "upgrade_not_forwarded")
    assert found["evidence"].startswith(status_code)
    assert "the backend (relayed through nginx)" in found["evidence"]
    assert "problem is on the path" in found["evidence"]
    assert "proxy_set_header Upgrade $http_upgrade" in found["fix"]
    assert layer(report, "connect-to")["detail"].startswith(f"127.0.0.1:{backend}: 101")


def test_nginx_dead_backend(tmp_path: Path) -> None:
    port = free_port()
    with nginx(site(port, free_port()), tmp_path, port):
        status, report = doctor(f"ws://127.0.0.1:{port}/")
        text_status, text = doctor_text(f"ws://127.0.0.1:{port}/")
    assert text_status == 1
    assert "ERROR gateway_upstream_unreachable (layer upgrade)" in text
    assert text.rstrip().endswith("broken: 1 error(s), 0 warning(s)")
    assert status == 1
    assert codes(report) == ["gateway_upstream_unreachable"]
    found = finding(report, "gateway_upstream_unreachable")
    assert "502 Bad Gateway from nginx itself" in found["evidence"]
    assert "proxy_pass" in found["fix"]


async def slow_handshake(conn: ServerConnection, request: Request) -> None:
    await asyncio.sleep(8)


def test_nginx_504_names_proxy_read_timeout(tmp_path: Path) -> None:
    port = free_port()
    extra = UPGRADE + "\n            proxy_read_timeout 2s;"
    with (
        ws_server(process_request=slow_handshake) as backend,
        nginx(site(port, backend, extra), tmp_path, port),
    ):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "20")
    assert status == 1
    assert codes(report) == ["gateway_timeout"]
    evidence = finding(report, "gateway_timeout")["evidence"]
    assert "504 Gateway Time-out from nginx itself" in evidence
    assert "fits nginx proxy_read_timeout set to about 2 s" in evidence


def test_nginx_idle_cut(tmp_path: Path) -> None:
    port = free_port()
    extra = UPGRADE + "\n            proxy_read_timeout 2s;"
    with (
        ws_server(ping_interval=None) as backend,
        nginx(site(port, backend, extra), tmp_path, port),
    ):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--idle", "10")
    assert status == 1
    assert errors(report) == ["idle_cut"]
    evidence = finding(report, "idle_cut")["evidence"]
    assert "by TCP EOF without a close frame" in evidence
    assert "nginx proxy_read_timeout" in evidence
    seconds = float(evidence.split("cut after ")[1].split(" s")[0])
    assert 1.0 <= seconds < 9.0  # nginx cuts at 2 s; bounds left wide for a slow box


def test_nginx_idle_bisect(tmp_path: Path) -> None:
    port = free_port()
    extra = UPGRADE + "\n            proxy_read_timeout 3s;"
    with (
        ws_server(ping_interval=None) as backend,
        nginx(site(port, backend, extra), tmp_path, port),
    ):
        status, report = doctor(
            f"ws://127.0.0.1:{port}/", "--idle", "12", "--idle-bisect", "--idle-conns", "6"
        )
    assert status == 1
    assert errors(report) == ["idle_cut"]
    idle = layer(report, "idle")
    assert idle["detail"].startswith("bisect over")
    evidence = finding(report, "idle_cut")["evidence"]
    assert "nginx proxy_read_timeout" in evidence
    # The 2 s span pinged before the 3 s cut and survived; longer spans were cut.
    assert "a connection quiet for 2 s survived" in evidence


def test_nginx_burst_against_slow_limited_handshake(tmp_path: Path) -> None:
    lock: list[asyncio.Lock] = []

    async def one_at_a_time(conn: ServerConnection, request: Request) -> None:
        if not lock:
            lock.append(asyncio.Lock())
        async with lock[0]:  # the backend does one handshake at a time, slowly
            await asyncio.sleep(0.4)

    port = free_port()
    extra = UPGRADE + "\n            proxy_read_timeout 2s;"
    with (
        ws_server(process_request=one_at_a_time) as backend,
        nginx(site(port, backend, extra), tmp_path, port),
    ):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--burst", "10", "--timeout", "15")
    assert status == 1
    assert errors(report) == ["burst_overload"]
    evidence = finding(report, "burst_overload")["evidence"]
    assert "http 504" in evidence
    assert layer(report, "ping")["ok"]  # a single handshake works


def test_nginx_out_of_worker_connections_single(tmp_path: Path) -> None:
    # Two connections: the listener and the client; none left for the upstream.
    port = free_port()
    with ws_server() as backend, nginx(site(port, backend), tmp_path, port, worker_connections=2):
        status, report = doctor(f"ws://127.0.0.1:{port}/")
    assert status == 1
    assert codes(report) == ["proxy_internal_error"]
    found = finding(report, "proxy_internal_error")
    assert "500 Internal Server Error from nginx itself" in found["evidence"]
    assert "worker_connections are not enough" in found["fix"]


def test_nginx_out_of_worker_connections_under_burst(tmp_path: Path) -> None:
    # Room for one proxied WebSocket: a single handshake works, a burst is dropped.
    port = free_port()
    with ws_server() as backend, nginx(site(port, backend), tmp_path, port, worker_connections=3):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--burst", "8")
    assert status == 1
    assert errors(report) == ["burst_overload"]
    assert layer(report, "ping")["ok"]
    evidence = finding(report, "burst_overload")["evidence"]
    # Dropped with no HTTP status at all: EOF, or a reset when the request was unread.
    assert "eof: " in evidence or "reset: " in evidence
    assert "worker_connections" in finding(report, "burst_overload")["fix"]


def test_nginx_own_404_for_unknown_location(tmp_path: Path) -> None:
    port = free_port()
    with ws_server() as backend:
        body = f"""
    server {{
        listen 127.0.0.1:{port};
        location /ws {{
            proxy_pass http://127.0.0.1:{backend};{UPGRADE}
        }}
        location / {{ return 404; }}
    }}"""
        with nginx(body, tmp_path, port):
            status, report = doctor(f"ws://127.0.0.1:{port}/chat")
            ok_status, _ = doctor(f"ws://127.0.0.1:{port}/ws")
    assert status == 1
    assert codes(report) == ["path_not_found"]
    found = finding(report, "path_not_found")
    assert "404 Not Found from nginx itself" in found["evidence"]
    assert "location" in found["fix"]
    assert ok_status == 0
