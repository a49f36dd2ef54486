"""Regression tests for the defects an attack on the gateway found (issue 10): request
smuggling through an upgrade that carries a body (D1), a client getting a healthy
backend ejected (D2), unbounded chunked trailers (D3), an endless backend response head
(D4), a stalled request body (D5), the head limit bypassed by pipelining (D10), and
heads a proxy must refuse (no Host, two Hosts, another HTTP version). Every backend is
the test's own, made of sockets, and every client is a raw socket."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httptools

from tests.support.gateway import gateway
from tests.support.http_backend import http_backend
from tests.support.raw import KEY, raw_request, raw_server, upgrade_request
from wsgate.protocol.handshake import accept_value

# A gateway that routes /public only: a request for /admin that reaches the backend
# was never routed by the gateway, so it was smuggled.
CONFIG = """
[server]
listen = ["127.0.0.1:{{port}}"]
max_header_bytes = 16384
body_timeout_s = {body_timeout}
max_response_header_bytes = 8192
[pools.app]
backends = ["127.0.0.1:{backend}"]
response_timeout_s = {response_timeout}
retries = 0
[pools.app.health]
kind = "none"
[[routes]]
path_prefix = "/public"
pool = "app"
"""


def config(backend: int, *, body_timeout: float = 30.0, response_timeout: float = 60.0) -> str:
    return CONFIG.format(
        backend=backend, body_timeout=body_timeout, response_timeout=response_timeout
    )


@dataclass
class Seen:
    """What a recording backend parsed: (connection number, method, target) per request."""

    requests: list[tuple[int, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def targets(self) -> list[str]:
        with self.lock:
            return [target for _, _, target in self.requests]

    def connections(self) -> list[int]:
        with self.lock:
            return [conn for conn, _, _ in self.requests]


class _Parsed:
    """httptools callbacks: one backend connection's requests, answered as soon as
    their head is complete (before any body), as servers that refuse early do."""

    def __init__(self, conn: socket.socket, number: int, seen: Seen, status: int) -> None:
        self.conn = conn
        self.number = number
        self.seen = seen
        self.status = status
        self.url = b""
        self.parser = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        method = self.parser.get_method().decode()
        with self.seen.lock:
            self.seen.requests.append((self.number, method, self.url.decode()))
        body = b"answered " + self.url
        self.conn.sendall(
            b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (self.status, len(body)) + body
        )


@contextlib.contextmanager
def recording_backend(status: int = 404) -> Iterator[tuple[int, Seen]]:
    """A keep-alive HTTP/1.1 backend that honours Content-Length (it reads a body after
    answering) and records every request it parses."""
    seen = Seen()
    counter = iter(range(1_000_000))

    def behaviour(conn: socket.socket) -> None:
        parsed = _Parsed(conn, next(counter), seen, status)
        conn.settimeout(30)
        while True:
            data = conn.recv(65536)
            if not data:
                return
            try:
                parsed.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                continue  # an upgrade it declines: the connection stays open
            except httptools.HttpParserError:
                return

    with raw_server(behaviour) as port:
        yield port, seen


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def cause_of(answer: bytes) -> str:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "x-wsgate-cause":
            return value.strip()
    return ""


def exchange(port: int, data: bytes) -> bytes:
    """One request on a fresh connection; the first answer (head and sized body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


def test_d1_an_upgrade_with_a_body_cannot_smuggle_a_request(tmp_path: Path) -> None:
    # The attack: an upgrade announcing K body bytes, refused at once by the backend, whose
    # connection went back to the idle pool; the next routed request on it (here the
    # attacker's own, carrying `GET /admin` as its body) lost its head as the missing
    # body, and the backend parsed /admin as a request. Fails before the D1 fix.
    with (
        recording_backend() as (backend, seen),
        gateway(tmp_path, config=config(backend)) as gw,
    ):
        carrier_body = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
        carrier = (
            b"POST /public/next HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % len(carrier_body)
            + carrier_body
        )
        head_len = len(carrier) - len(carrier_body)
        smuggler = upgrade_request("/public/ws", host="x", Content_Length=str(head_len))
        first = exchange(gw.port, smuggler + b"x" * head_len)
        second = exchange(gw.port, carrier)
        time.sleep(0.5)  # let the backend parse whatever it got
    assert status_of(first) == 400, first
    assert cause_of(first) == "upgrade_with_body"
    assert status_of(second) == 404
    assert "/admin" not in seen.targets(), seen.requests
    assert "/public/ws" not in seen.targets()  # refused before any backend saw it


def test_d1_chunked_and_h2c_upgrades_with_bodies_are_refused(tmp_path: Path) -> None:
    with (
        recording_backend() as (backend, seen),
        gateway(tmp_path, config=config(backend)) as gw,
    ):
        chunked = upgrade_request("/public/a", host="x", Transfer_Encoding="chunked")
        h2c = (
            b"POST /public/b HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        answers = [exchange(gw.port, chunked + b"5\r\nhello\r\n0\r\n\r\n")]
        answers.append(exchange(gw.port, h2c))
        # A zero Content-Length carries nothing: still a valid upgrade request.
        empty = exchange(gw.port, upgrade_request("/public/c", host="x", Content_Length="0"))
    assert [status_of(a) for a in answers] == [400, 400]
    assert {cause_of(a) for a in answers} == {"upgrade_with_body"}
    assert status_of(empty) == 404  # the backend's own answer
    assert seen.targets() == ["/public/c"]


def test_d1_a_connection_that_carried_a_refused_upgrade_is_not_reused(tmp_path: Path) -> None:
    # Both a refused WebSocket upgrade and an h2c upgrade answered as plain HTTP leave the
    # backend in a state the gateway cannot know: their connections are closed, never
    # handed to the next request. Fails before the D1 fix (the h2c one was reused).
    with (
        recording_backend() as (backend, seen),
        gateway(tmp_path, config=config(backend)) as gw,
    ):
        refused = exchange(gw.port, upgrade_request("/public/ws", host="x"))
        plain = exchange(gw.port, b"GET /public/one HTTP/1.1\r\nHost: x\r\n\r\n")
        h2c = (
            b"GET /public/h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        )
        after_h2c = exchange(gw.port, h2c)
        plain2 = exchange(gw.port, b"GET /public/two HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [status_of(a) for a in (refused, plain, after_h2c, plain2)] == [404] * 4
    by_target = {target: conn for conn, _, target in seen.requests}
    assert by_target["/public/one"] != by_target["/public/ws"]
    assert by_target["/public/two"] != by_target["/public/h2c"]


def test_d2_a_client_cannot_get_a_healthy_backend_ejected(tmp_path: Path) -> None:
    # A backend that waits for the body an upgrade request announces never answers; the
    # gateway's 504s counted against it until it was ejected and every client got 503
    # no_healthy_upstream. Fails before the fix: the fourth client's plain GET got 503.
    def waits_for_the_body(conn: socket.socket) -> None:
        conn.settimeout(30)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
            while b"\r\n\r\n" in data:
                head, _, data = data.partition(b"\r\n\r\n")
                if b"content-length" in head.lower():
                    continue  # waits for a body that the gateway holds back
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_server(waits_for_the_body) as backend:
        text = config(backend, response_timeout=1.0)
        with gateway(tmp_path, config=text) as gw:
            attacks = [
                exchange(
                    gw.port, upgrade_request(f"/public/{n}", host="x", Content_Length="4") + b"abcd"
                )
                for n in range(5)
            ]
            after = exchange(gw.port, b"GET /public/ok HTTP/1.1\r\nHost: x\r\n\r\n")
            log = "\n".join(gw.log_lines())
    assert {status_of(a) for a in attacks} == {400}
    assert status_of(after) == 200, after
    assert "backend_ejected" not in log


def _chunked_post(trailer: bytes) -> bytes:
    return (
        b"POST /public/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n"
    )


def test_d3_chunked_trailers_count_against_the_header_limit(tmp_path: Path) -> None:
    # 64 KiB of trailer fields and one 64 KiB trailer value, against a 16 KiB limit.
    # Fails before the fix: both were accepted and the request was forwarded.
    many = b"".join(b"X-T%d: %s\r\n" % (n, b"v" * 60) for n in range(1000))
    one = b"X-Big: " + b"v" * 65536 + b"\r\n"
    with http_backend() as backend, gateway(tmp_path, config=config(backend)) as gw:
        answers = [exchange(gw.port, _chunked_post(trailer)) for trailer in (many, one)]
        small = exchange(gw.port, _chunked_post(b"X-Checksum: abc\r\n"))
    assert [status_of(a) for a in answers] == [431, 431], answers
    assert {cause_of(a) for a in answers} == {"trailer_too_large"}
    assert status_of(small) == 200


def test_d3_a_trailer_that_trickles_in_is_cut_at_the_limit(tmp_path: Path) -> None:
    # One trailer value sent in 4 KiB writes: the gateway answers 431 once 16 KiB of it
    # are in, rather than buffering megabytes. Fails before the fix (no answer at all).
    with (
        http_backend() as backend,
        gateway(tmp_path, config=config(backend)) as gw,
        socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock,
    ):
        sock.sendall(_chunked_post(b"")[: -len(b"\r\n")] + b"X-Big: ")
        answer = b""
        with contextlib.suppress(OSError):
            for _ in range(1024):  # at most 4 MiB
                sock.sendall(b"v" * 4096)
                time.sleep(0.001)
        sock.settimeout(30)
        with contextlib.suppress(OSError):
            answer = read_answer(sock)
    assert status_of(answer) == 431, answer[:200]
    assert cause_of(answer) == "trailer_too_large"


def test_d4_an_endless_response_head_gets_a_502_and_closes_the_backend(
    tmp_path: Path,
) -> None:
    # The backend sends one header that never ends. Fails before the fix: the gateway read
    # it for response_timeout_s (here 60 s) at full CPU and answered 504.
    closed = threading.Event()

    def endless_head(conn: socket.socket) -> None:
        conn.settimeout(30)
        conn.recv(65536)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Endless: ")
            for _ in range(4096):  # at most 16 MiB
                conn.sendall(b"a" * 4096)
        except OSError:
            closed.set()

    with raw_server(endless_head) as backend, gateway(tmp_path, config=config(backend)) as gw:
        answer = exchange(gw.port, b"GET /public/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed.wait(30), "the gateway kept reading the endless head"
    assert status_of(answer) == 502, answer
    assert cause_of(answer) == "upstream_header_too_large"


def test_d4_a_large_but_limited_response_head_passes(tmp_path: Path) -> None:
    def big_head(conn: socket.socket) -> None:
        conn.settimeout(30)
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 6000 + b"\r\nContent-Length: 2\r\n\r\nok"
        )

    with raw_server(big_head) as backend, gateway(tmp_path, config=config(backend)) as gw:
        answer = exchange(gw.port, b"GET /public/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 200
    assert answer.endswith(b"ok")


def test_d5_a_stalled_body_is_answered_408_and_not_blamed_on_the_backend(
    tmp_path: Path,
) -> None:
    # A backend that reads the whole body before answering, and a client that stops
    # after one byte. Fails before the fix: no answer within 30 s.
    def reads_body(conn: socket.socket) -> None:
        conn.settimeout(60)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        while conn.recv(65536):
            pass

    with (
        raw_server(reads_body) as backend,
        gateway(tmp_path, config=config(backend, body_timeout=1.0)) as gw,
    ):
        with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
            sock.sendall(b"POST /public/up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx")
            answer = read_answer(sock)
        log = "\n".join(gw.log_lines())
    assert status_of(answer) == 408, answer
    assert cause_of(answer) == "body_timeout"
    assert "backend_ejected" not in log


def test_d10_a_pipelined_head_is_held_to_the_limit(tmp_path: Path) -> None:
    # A tiny request and a 40 KiB head in one write (limit 16 KiB). Fails before the fix:
    # the second head was forwarded to the backend.
    big = b"GET /public/big HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    with (
        recording_backend(status=200) as (backend, seen),
        gateway(tmp_path, config=config(backend)) as gw,
    ):
        answer = raw_request(gw.port, b"GET /public/small HTTP/1.1\r\nHost: x\r\n\r\n" + big)
    assert answer.startswith(b"HTTP/1.1 200")
    second = answer[answer.index(b"HTTP/1.1 ", 5) :]
    assert status_of(second) == 431
    assert cause_of(second) == "header_too_large"
    assert seen.targets() == ["/public/small"]


def test_heads_a_proxy_must_refuse(tmp_path: Path) -> None:
    # No Host in HTTP/1.1, two Hosts, HTTP/2.0 and HTTP/0.9 request lines. Fails before
    # the fix: each was forwarded (as HTTP/1.1).
    cases = {
        b"GET /public/a HTTP/1.1\r\n\r\n": (400, "bad_host"),
        b"GET /public/b HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n": (400, "bad_host"),
        b"GET /public/c HTTP/2.0\r\nHost: x\r\n\r\n": (505, "unsupported_http_version"),
        b"GET /public/d HTTP/0.9\r\nHost: x\r\n\r\n": (505, "unsupported_http_version"),
    }
    with (
        recording_backend(status=200) as (backend, seen),
        gateway(tmp_path, config=config(backend)) as gw,
    ):
        got = {request: exchange(gw.port, request) for request in cases}
        ok = exchange(gw.port, b"GET /public/e HTTP/1.0\r\n\r\n")  # 1.0 needs no Host
    for request, (status, cause) in cases.items():
        assert (status_of(got[request]), cause_of(got[request])) == (status, cause), request
    assert status_of(ok) == 200
    assert seen.targets() == ["/public/e"]


def test_a_websocket_through_the_hardened_gateway_still_works(tmp_path: Path) -> None:
    # The checks above must not touch a valid handshake: a 101 from a raw backend.
    accept = accept_value(KEY.encode())

    def upgrade_then_echo(conn: socket.socket) -> None:
        conn.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        while chunk := conn.recv(65536):
            conn.sendall(chunk)

    with (
        raw_server(upgrade_then_echo) as backend,
        gateway(tmp_path, config=config(backend)) as gw,
        socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock,
    ):
        sock.sendall(upgrade_request("/public/ws", host="x"))
        head = read_answer(sock)
        sock.sendall(b"\x81\x80abcd")  # an empty masked text frame
        echoed = sock.recv(64)
    assert status_of(head) == 101
    assert echoed == b"\x81\x80abcd"
