"""Every cause the gateway produces, each from a real situation on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path

import httptools
import pytest

from tests.support.backends import ws_server
from tests.support.gateway import RunningGateway, gateway
from tests.support.procs import free_port
from tests.support.raw import (
    full_backlog_listener,
    raw_request,
    raw_server,
    read_head,
    upgrade_request,
)


class Parsed:
    def __init__(self, raw: bytes) -> None:
        self.headers: dict[str, str] = {}
        self.body = b""
        parser = httptools.HttpResponseParser(self)
        with contextlib.suppress(httptools.HttpParserUpgrade):
            parser.feed_data(raw)
        self.status = parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body


def assert_explained(response: Parsed, status: int, cause: str) -> None:
    assert response.status == status, response.body
    assert response.headers["x-wsgate-cause"] == cause
    assert response.headers["proxy-status"].startswith("wsgate; error=")
    assert f'details="{cause}' in response.headers["proxy-status"]
    assert f"cause: {cause}".encode() in response.body
    assert b"what to check:" in response.body


def error_logged(gw: RunningGateway, cause: str) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in gw.log_lines():
            record: dict[str, object] = json.loads(line)
            if record.get("event") == "error" and record.get("cause") == cause:
                return record
        time.sleep(0.05)
    raise AssertionError(f"no error line for {cause}: {gw.log_lines()}")


def pool_config(backend: int, **pool: float) -> str:
    extra = "\n".join(f"{key} = {value}" for key, value in pool.items())
    return f"""
[server]
listen = ["127.0.0.1:{{port}}"]
header_timeout_s = 1
max_header_bytes = 1024

[pools.app]
backends = ["127.0.0.1:{backend}"]
{extra}
"""


def test_refused_port_gives_502_upstream_connect_refused(tmp_path: Path) -> None:
    dead = free_port()
    with gateway(tmp_path, upstreams=[dead]) as gw:
        response = Parsed(raw_request(gw.port, upgrade_request()))
        assert_explained(response, 502, "upstream_connect_refused")
        record = error_logged(gw, "upstream_connect_refused")
        assert record["backend"] == f"127.0.0.1:{dead}"
        assert record["client"] == "127.0.0.1"
        assert "total_ms" in record


def test_connect_that_never_completes_gives_504(tmp_path: Path) -> None:
    with (
        full_backlog_listener() as stuck,
        gateway(tmp_path, config=pool_config(stuck, connect_timeout_s=1)) as gw,
    ):
        response = Parsed(raw_request(gw.port, upgrade_request()))
        assert_explained(response, 504, "upstream_connect_timeout")


def test_silent_backend_gives_504_handshake_timeout(tmp_path: Path) -> None:
    def silent(conn: socket.socket) -> None:
        read_head(conn)
        time.sleep(10)

    with (
        raw_server(silent) as backend,
        gateway(tmp_path, config=pool_config(backend, response_timeout_s=1)) as gw,
    ):
        response = Parsed(raw_request(gw.port, upgrade_request()))
        assert_explained(response, 504, "upstream_handshake_timeout")


def test_backend_closing_early_gives_502(tmp_path: Path) -> None:
    def hang_up(conn: socket.socket) -> None:
        read_head(conn)
        conn.close()

    with raw_server(hang_up) as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        response = Parsed(raw_request(gw.port, upgrade_request()))
        assert_explained(response, 502, "upstream_closed_early")


def test_garbage_from_backend_gives_502_bad_response(tmp_path: Path) -> None:
    def garbage(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        time.sleep(2)

    with raw_server(garbage) as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        response = Parsed(raw_request(gw.port, upgrade_request()))
        assert_explained(response, 502, "upstream_bad_response")


def test_wrong_accept_gives_502_bad_accept(tmp_path: Path) -> None:
    def wrong_accept(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
        )
        time.sleep(2)

    with raw_server(wrong_accept) as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        response = Parsed(raw_request(gw.port, upgrade_request()))
        assert_explained(response, 502, "upstream_bad_accept")


def test_no_route_gives_404(tmp_path: Path) -> None:
    config = """
[server]
listen = ["127.0.0.1:{port}"]
[pools.app]
backends = ["127.0.0.1:9"]
[[routes]]
host = "app.test"
pool = "app"
"""
    with gateway(tmp_path, config=config) as gw:
        response = Parsed(raw_request(gw.port, upgrade_request(host="other.test")))
        assert_explained(response, 404, "no_route")


@pytest.mark.parametrize(
    "change",
    [
        {"Sec_WebSocket_Key": ""},
        {"Sec_WebSocket_Key": "dG9vIHNob3J0"},
        {"Connection": "keep-alive"},
    ],
)
def test_malformed_upgrade_gives_400(tmp_path: Path, change: dict[str, str]) -> None:
    with ws_server() as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        response = Parsed(raw_request(gw.port, upgrade_request(**change)))
        assert_explained(response, 400, "bad_upgrade_request")


def test_old_version_gives_426_with_version_header(tmp_path: Path) -> None:
    with ws_server() as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        response = Parsed(raw_request(gw.port, upgrade_request(Sec_WebSocket_Version="8")))
        assert_explained(response, 426, "unsupported_version")
        assert response.headers["sec-websocket-version"] == "13"


def _head_of_size(size: int) -> bytes:
    base = upgrade_request(X_Pad="")
    # base ends with the blank line; add an X-Pad header to reach `size` bytes in all.
    pad = size - len(base) - len("X-Pad: \r\n")
    return base[:-2] + b"X-Pad: " + b"p" * pad + b"\r\n\r\n"


def test_header_limit_at_n_passes_and_n_plus_1_gives_431(tmp_path: Path) -> None:
    with ws_server() as backend, gateway(tmp_path, config=pool_config(backend)) as gw:
        at_limit = _head_of_size(1024)
        assert len(at_limit) == 1024
        with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as sock:
            sock.sendall(at_limit)
            response = Parsed(read_head(sock))
        assert response.status == 101
        over = _head_of_size(1025)
        assert len(over) == 1025
        assert_explained(Parsed(raw_request(gw.port, over)), 431, "header_too_large")


def test_slow_head_gives_408(tmp_path: Path) -> None:
    with ws_server() as backend, gateway(tmp_path, config=pool_config(backend)) as gw:
        started = time.monotonic()
        response = Parsed(raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\n"))
        assert_explained(response, 408, "header_timeout")
        assert time.monotonic() - started >= 0.9


def test_dead_backend_is_skipped_while_another_is_up(tmp_path: Path) -> None:
    dead = free_port()
    with ws_server() as alive, gateway(tmp_path, upstreams=[dead, alive]) as gw:
        for _ in range(4):  # round robin puts the dead one first every other time
            with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as sock:
                sock.sendall(upgrade_request())
                assert Parsed(read_head(sock)).status == 101


def test_get_is_retried_elsewhere_but_a_streamed_post_is_not(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def hang_up(conn: socket.socket) -> None:
        head = read_head(conn)
        if head:  # not the health checker's connect-and-close (kind "tcp")
            seen.append(head.split(b" ", 1)[0])
        conn.close()

    with (
        raw_server(hang_up) as one,
        raw_server(hang_up) as two,
        gateway(tmp_path, upstreams=[one, two]) as gw,
    ):
        response = Parsed(raw_request(gw.port, b"GET /page HTTP/1.1\r\nHost: gw\r\n\r\n"))
        assert_explained(response, 502, "upstream_closed_early")
        assert seen == [b"GET", b"GET"]  # both backends tried
        seen.clear()
        post = b"POST /form HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello"
        response = Parsed(raw_request(gw.port, post))
        assert_explained(response, 502, "upstream_closed_early")
        assert seen == [b"POST"]  # its body went out once and was not kept: no replay
