"""Edge cases of the client connection found in a review, each through a real gateway:
clients that give up while queued, a non-WebSocket upgrade, a half-closed pipelining
client, and the per-backend connection cap while handshakes queue."""

from __future__ import annotations

import base64
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.gateway import gateway
from tests.support.http_backend import http_backend
from tests.support.procs import free_port, running
from tests.support.raw import raw_request


def upgrade_request(path: str = "/") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), key)
    )


def test_clients_that_give_up_while_queued_leave_the_queue(tmp_path: Path) -> None:
    # One slot, one second per handshake. A holds the slot; five clients send their
    # upgrade and close while queued; then C asks. The backend must do A's and C's
    # handshakes only, not five more for clients that are gone.
    port = free_port()
    argv = [sys.executable, "-m", "tests.support.named_backend", str(port), "S"]
    argv += ["--slow-handshake", "1.0", "--slots", "1"]
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
access_log = false
[pools.app]
backends = ["127.0.0.1:{port}"]
max_handshakes_per_backend = 1
[pools.app.health]
kind = "none"
"""
    with (
        running(argv, tmp_path / "backend.log", port) as backend,
        gateway(tmp_path, config=config) as gw,
    ):
        done: list[str] = []
        first = threading.Thread(target=lambda: done.append(_hello(f"{gw.url}/a")))
        first.start()
        time.sleep(0.3)  # A holds the slot
        ghosts = [socket.create_connection(("127.0.0.1", gw.port), timeout=20) for _ in range(5)]
        for ghost in ghosts:
            ghost.sendall(upgrade_request("/ghost"))
        time.sleep(0.3)  # queued behind A
        for ghost in ghosts:
            ghost.close()
        assert _hello(f"{gw.url}/c") == "S"
        first.join(timeout=60)
        assert done == ["S"]
        served = [line for line in backend.log().splitlines() if line.startswith("handshake")]
    assert served == ["handshake /a", "handshake /c"], served


def _hello(url: str) -> str:
    with connect(url, open_timeout=60) as ws:
        return str(ws.recv(timeout=60))


def test_a_non_websocket_upgrade_is_answered_then_closed(tmp_path: Path) -> None:
    # `Upgrade: h2c` (curl --http2 on http://) is answered as plain HTTP; the parser cannot
    # go on after an upgrade, so the answer says Connection: close and the gateway closes,
    # instead of leaving the keep-alive connection to hang.
    with http_backend() as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        request += b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        began = time.monotonic()
        answer = raw_request(gw.port, request + b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        took = time.monotonic() - began
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200")
    assert b"connection: close" in head
    assert answer.count(b"HTTP/1.1 ") == 1  # the bytes after the upgrade are not a request
    assert took < 30  # closed after the answer, not after the 75 s keep-alive timeout


def test_a_half_closed_client_gets_all_its_pipelined_answers(tmp_path: Path) -> None:
    with (
        http_backend() as backend,
        gateway(tmp_path, upstreams=[backend]) as gw,
        socket.create_connection(("127.0.0.1", gw.port), timeout=20) as sock,
    ):
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)))
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    assert answer.count(b"HTTP/1.1 200") == 3, answer


def test_the_connection_cap_holds_while_handshakes_queue(tmp_path: Path) -> None:
    # One handshake at a time, at most 2 connections: the clients queue for the handshake
    # slot, and when the second one's 101 frees that slot, the third must not slip in
    # before the second tunnel is counted.
    port = free_port()
    argv = [sys.executable, "-m", "tests.support.named_backend", str(port), "S"]
    argv += ["--slow-handshake", "0.3", "--slots", "4"]
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
access_log = false
[pools.app]
backends = ["127.0.0.1:{port}"]
max_handshakes_per_backend = 1
max_connections_per_backend = 2
[pools.app.health]
kind = "none"
"""
    release = threading.Event()

    def hold(index: int) -> str:
        try:
            with connect(f"ws://127.0.0.1:{gw.port}/{index}", open_timeout=6) as ws:
                ws.recv(timeout=20)
                release.wait(timeout=30)
                return "101"
        except InvalidStatus as exc:
            return str(exc.response.status_code)
        except TimeoutError:
            return "waiting"

    with (
        running(argv, tmp_path / "backend.log", port),
        gateway(tmp_path, config=config) as gw,
        ThreadPoolExecutor(4) as pool,
    ):
        futures = [pool.submit(hold, i) for i in range(4)]
        time.sleep(8)  # past the clients' 6 s open timeout
        release.set()
        outcomes = sorted(f.result(timeout=60) for f in futures)
    assert outcomes.count("101") == 2, outcomes
