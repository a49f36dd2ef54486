"""gateway/healthcheck.py on a real loop (asyncio's and uvloop's) against servers on
127.0.0.1: each kind (tcp, http, websocket) passing and failing, with the words it
says: refused, a wrong status, a close before the head, garbage, silence, a 101 with a
wrong accept, a path that cannot be sent."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop
from websockets.asyncio.server import ServerConnection, serve

from tests.support.raw import raw_server, read_head
from wsgate.config.model import Address, HealthCheckConfig
from wsgate.gateway.healthcheck import USER_AGENT, run_check

Runner = Callable[[Coroutine[Any, Any, None]], None]
TIMEOUT_S = 20.0  # the checks' own: generous, for what answers at once


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    return uvloop.run if request.param == "uvloop" else asyncio.run


def check(run: Runner, port: int, **keys: Any) -> tuple[bool, str]:
    found: list[tuple[bool, str]] = []

    async def main() -> None:
        config = HealthCheckConfig(**{"timeout_s": TIMEOUT_S, **keys})
        found.append(await run_check(config, Address("127.0.0.1", port), 5.0))

    run(main())
    return found[0]


def answering(answer: bytes, seen: list[bytes] | None = None) -> Callable[[socket.socket], None]:
    def behaviour(conn: socket.socket) -> None:
        head = read_head(conn)
        if seen is not None:
            seen.append(head)
        conn.sendall(answer)
        conn.close()

    return behaviour


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_tcp_passes_when_something_listens_and_fails_when_refused(run: Runner) -> None:
    with raw_server(lambda conn: None) as port:
        assert check(run, port, kind="tcp") == (True, "connected")
    ok, words = check(run, free_port(), kind="tcp")
    # The system's words on both loops (asyncio's strerror would say "Connect call failed
    # ('127.0.0.1', port)", uvloop's "Connection refused").
    assert not ok and words == "Connection refused"


def test_http_passes_on_the_expected_status_and_sends_a_plain_get(run: Runner) -> None:
    seen: list[bytes] = []
    ok = b"HTTP/1.1 204 No Content\r\n\r\n"
    with raw_server(answering(ok, seen)) as port:
        assert check(run, port, kind="http", path="/healthz", expect_status=204) == (
            True,
            "status 204",
        )
    (head,) = seen
    assert head.startswith(b"GET /healthz HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n".encode() in head
    assert f"User-Agent: {USER_AGENT}\r\n".encode() in head


def test_http_fails_on_another_status(run: Runner) -> None:
    answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    with raw_server(answering(answer)) as port:
        assert check(run, port, kind="http") == (False, "status 503, expected 200")


def test_http_fails_on_a_close_before_the_head_ends(run: Runner) -> None:
    with raw_server(answering(b"HTTP/1.1 200 OK\r\nContent-")) as port:
        assert check(run, port, kind="http") == (False, "closed before a full response head")


def test_http_fails_on_garbage(run: Runner) -> None:
    with raw_server(answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")) as port:
        ok, words = check(run, port, kind="http")
    assert not ok and words and words != "closed before a full response head"


def test_a_silent_backend_fails_after_the_check_timeout(run: Runner) -> None:
    release = threading.Event()

    def silent(conn: socket.socket) -> None:
        release.wait(30)

    with raw_server(silent) as port:
        try:
            assert check(run, port, kind="http", timeout_s=0.5) == (
                False,
                "no answer within 0.5 s",
            )
        finally:
            release.set()


def test_websocket_passes_against_a_websocket_server(run: Runner) -> None:
    found: list[tuple[bool, str]] = []
    paths: list[str] = []

    async def main() -> None:
        handled = asyncio.Event()

        async def handler(ws: ServerConnection) -> None:
            paths.append(ws.request.path if ws.request is not None else "")
            handled.set()
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            config = HealthCheckConfig(kind="websocket", path="/ws", expect_status=101)
            found.append(await run_check(config, Address("127.0.0.1", port), 5.0))
            await asyncio.wait_for(handled.wait(), TIMEOUT_S)  # after the handshake

    run(main())
    assert found == [(True, "status 101")] and paths == ["/ws"]


def test_websocket_fails_on_a_101_with_a_wrong_accept(run: Runner) -> None:
    answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n"
    )
    with raw_server(answering(answer)) as port:
        ok, words = check(run, port, kind="websocket", expect_status=101)
    assert not ok and "accept" in words.lower()


def test_a_path_with_a_line_break_is_not_sent(run: Runner) -> None:
    seen: list[bytes] = []
    with raw_server(answering(b"", seen)) as port:
        ok, words = check(run, port, kind="websocket", path="/a\r\nX: y", expect_status=101)
    assert not ok and words.startswith("cannot send the check: ")
