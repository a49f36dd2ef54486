"""Edge cases of the client connection found in a review, each through a real gateway:
clients that give up while queued, a non-WebSocket upgrade, a half-closed pipelining
client, and the per-backend connection cap while handshakes queue."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.backends import named_backend
from tests.support.gateway import gateway
from tests.support.http_backend import http_backend
from tests.support.procs import free_port
from tests.support.raw import raw_request, raw_server, read_head, upgrade_request


def test_clients_that_give_up_while_queued_leave_the_queue(tmp_path: Path) -> None:
    # One slot, one second per handshake. A holds the slot; five clients send their
    # upgrade and close while queued; then C asks. The backend must do A's and C's
    # handshakes only, not five more for clients that are gone.
    port = free_port()
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
        named_backend(tmp_path, port, "S", "--slow-handshake", "1.0", "--slots", "1") as backend,
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
        named_backend(tmp_path, port, "S", "--slow-handshake", "0.3", "--slots", "4"),
        gateway(tmp_path, config=config) as gw,
        ThreadPoolExecutor(4) as pool,
    ):
        futures = [pool.submit(hold, i) for i in range(4)]
        time.sleep(8)  # past the clients' 6 s open timeout
        release.set()
        outcomes = sorted(f.result(timeout=60) for f in futures)
    assert outcomes.count("101") == 2, outcomes


def test_a_garbled_answer_is_retried_once_on_the_other_backend(tmp_path: Path) -> None:
    # A answers garbage; B answers properly. Each request that lands on A must reach B
    # exactly once more (the garbled connection's later close must not retry it again).
    seen_by_b: list[bytes] = []

    def garbled(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 2x0 Broken\r\n\r\n")
        time.sleep(1.0)

    def proper(conn: socket.socket) -> None:
        while head := read_head(conn):
            seen_by_b.append(head.split(b"\r\n", 1)[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    config = """
[server]
listen = ["127.0.0.1:{port}"]
access_log = false
[pools.app]
backends = ["127.0.0.1:A", "127.0.0.1:B"]
balance = "round_robin"
retries = 1
eject_after_failures = 100
[pools.app.health]
kind = "none"
"""
    with raw_server(garbled) as a, raw_server(proper) as b:
        config = config.replace(":A", f":{a}").replace(":B", f":{b}")
        with gateway(tmp_path, config=config) as gw:
            answers = []
            for index in range(4):
                request = b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % index
                answers.append(raw_request(gw.port, request).split(b"\r\n", 1)[0])
                time.sleep(0.3)
    assert answers == [b"HTTP/1.1 200 OK"] * 4
    assert sorted(seen_by_b) == sorted(b"GET /%d HTTP/1.1" % i for i in range(4)), seen_by_b


def test_a_post_is_not_replayed_when_a_reused_connection_closes(tmp_path: Path) -> None:
    # The backend answers the first request on a connection and closes on the second, as
    # a backend whose keep-alive timeout just ran out does. A GET may be sent again on a
    # fresh connection; a POST may not: the backend may have acted on it.
    requests: list[bytes] = []

    def one_per_connection(conn: socket.socket) -> None:
        count = 0
        while head := read_head(conn):
            requests.append(head.split(b"\r\n", 1)[0])
            count += 1
            if count > 1:
                conn.close()  # without answering
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_server(one_per_connection) as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        first = raw_request(gw.port, b"GET /warm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        post = b"POST /pay HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"  # no body
        second = raw_request(gw.port, post)
    assert first.startswith(b"HTTP/1.1 200")
    assert second.startswith(b"HTTP/1.1 502")
    assert requests.count(b"POST /pay HTTP/1.1") == 1, requests


def test_a_handshake_timeout_counts_once_against_the_backend(tmp_path: Path) -> None:
    # Ejection after 2 failures: one timed-out handshake is one failure, so the second
    # handshake still reaches the (silent) backend and times out too, instead of finding
    # the backend ejected (503 no_healthy_upstream).
    def silent(conn: socket.socket) -> None:
        read_head(conn)
        time.sleep(10)

    config = """
[server]
listen = ["127.0.0.1:{port}"]
access_log = false
[pools.app]
backends = ["127.0.0.1:S"]
response_timeout_s = 1
eject_after_failures = 2
retries = 0
[pools.app.health]
kind = "none"
"""
    with (
        raw_server(silent) as backend,
        gateway(tmp_path, config=config.replace(":S", f":{backend}")) as gw,
    ):
        causes = []
        for _ in range(2):
            answer = raw_request(gw.port, upgrade_request())
            head = answer.split(b"\r\n\r\n", 1)[0].lower()
            causes.append(head.split(b"x-wsgate-cause: ", 1)[1].split(b"\r\n", 1)[0])
    assert causes == [b"upstream_handshake_timeout"] * 2
