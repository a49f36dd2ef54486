"""Frame-aware tunnels through a real `wsgate serve`: keepalive pings through a real nginx
with a short proxy_read_timeout, a backend frozen with SIGSTOP, message limits, the
Origin and subprotocol policy, and the gateway's own closing handshake.

Both ends are plain sockets (`RawPeer`) where the test must see every frame byte for byte;
`websockets` clients and servers elsewhere. Every process is started here and stopped by
its PID; every wait is bounded and generous, and no test asserts on speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin, Subprotocol

from tests.doctor.harness import codes, doctor, finding
from tests.support.backends import named_backend, ws_server
from tests.support.gateway import RunningGateway, gateway
from tests.support.procs import free_port, nginx
from tests.support.raw import raw_server, read_head, upgrade_request
from wsgate.protocol.frame_relay import KEEPALIVE_PREFIX
from wsgate.protocol.frames import apply_mask
from wsgate.protocol.handshake import accept_value

pytestmark = pytest.mark.e2e

WAIT_S = 30.0


# == plain-socket WebSocket ends that record every frame =====================================
class RawPeer:
    """One end of a WebSocket on a plain socket: records each frame it receives as
    (opcode, payload, the frame's bytes as they came), answers pings with pongs as an
    endpoint must, and answers a close frame with its own."""

    def __init__(self, sock: socket.socket, *, client: bool, pending: bytes = b"") -> None:
        self.sock = sock
        self.client = client  # frames from a client are masked
        self.frames: list[tuple[int, bytes, bytes]] = []
        self.sent: list[bytes] = []
        self.closed = threading.Event()
        self.path = b""  # the request's target, on the backend's side
        self._buf = pending
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def frame(self, opcode: int, payload: bytes) -> bytes:
        length = len(payload)
        second = 0x80 if self.client else 0
        if length < 126:
            head = bytes((0x80 | opcode, second | length))
        else:
            head = bytes((0x80 | opcode, second | 126)) + struct.pack("!H", length)
        if not self.client:
            return head + payload
        mask = os.urandom(4)
        return head + mask + apply_mask(payload, mask)

    def send(self, opcode: int, payload: bytes) -> bytes:
        data = self.frame(opcode, payload)
        with self._lock:
            self.sent.append(data)
            with contextlib.suppress(OSError):
                self.sock.sendall(data)
        return data

    def _read(self) -> None:
        try:
            while True:
                while self._one_frame():
                    pass
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                self._buf += chunk
        except OSError:
            return
        finally:
            self.closed.set()

    def _one_frame(self) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        length, head = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return False
            (length,) = struct.unpack_from("!H", buf, 2)
            head = 4
        elif length == 127:
            if len(buf) < 10:
                return False
            (length,) = struct.unpack_from("!Q", buf, 2)
            head = 10
        masked = buf[1] & 0x80
        start = head + (4 if masked else 0)
        if len(buf) < start + length:
            return False
        raw, self._buf = buf[: start + length], buf[start + length :]
        payload = raw[start:]
        if masked:
            payload = apply_mask(payload, raw[head:start])
        opcode = raw[0] & 0x0F
        self.frames.append((opcode, payload, raw))
        if opcode == 0x9:
            self.send(0xA, payload)
        elif opcode == 0x8:
            self.send(0x8, payload[:2])
        return True

    def wait_for(self, test: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not test():
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen in {timeout_s} s; frames: {self.summary()}")
            time.sleep(0.02)

    def summary(self) -> list[tuple[int, bytes]]:
        return [(op, payload[:40]) for op, payload, _ in self.frames]

    def ours(self, opcode: int) -> list[bytes]:
        """Payloads of frames with `opcode` that carry the gateway's keepalive payload."""
        return [p for op, p, _ in self.frames if op == opcode and p.startswith(KEEPALIVE_PREFIX)]


@contextlib.contextmanager
def raw_backend() -> Iterator[tuple[int, list[RawPeer]]]:
    """A backend of plain sockets that completes the handshake and records frames."""
    peers: list[RawPeer] = []

    def behaviour(conn: socket.socket) -> None:
        head = read_head(conn)
        keys = [
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        ]
        if not keys:
            return  # the gateway's health check: a connect, nothing more
        key = keys[0]
        accept = accept_value(key)
        peer = RawPeer(conn, client=False, pending=head.split(b"\r\n\r\n", 1)[1])
        peer.path = head.split(b" ", 2)[1]
        # Recorded before the 101 goes out: a client that has its 101 finds its peer here
        # (appended after, a test could look before the backend's thread got there).
        peers.append(peer)
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        peer.closed.wait(600)

    with raw_server(behaviour) as port:
        yield port, peers


@pytest.fixture
def raw_client() -> Iterator[Callable[..., RawPeer]]:
    """Opens plain-socket WebSocket clients to 127.0.0.1:PORT; closes them afterwards."""
    socks: list[socket.socket] = []

    def open_one(port: int, path: str = "/") -> RawPeer:
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        socks.append(sock)
        sock.settimeout(None)
        sock.sendall(upgrade_request(path))
        head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 101"), head
        return RawPeer(sock, client=True, pending=head.split(b"\r\n\r\n", 1)[1])

    yield open_one
    for sock in socks:
        sock.close()


def records(gw: RunningGateway) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gw.log_lines() if line.startswith("{")]


def wait_for_record(gw: RunningGateway, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        found = [r for r in records(gw) if test(r)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, gw.log_lines()[-20:]
        time.sleep(0.1)


def config(backend: int, **pool: object) -> str:
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in pool.items())
    return f"""
[server]
listen = ["127.0.0.1:{{port}}"]
[pools.app]
backends = ["127.0.0.1:{backend}"]
{lines}
"""


# == keepalive ===============================================================================
def test_keepalive_pings_both_sides_and_swallows_their_pongs(
    tmp_path: Path, raw_client: Callable[..., RawPeer]
) -> None:
    with (
        raw_backend() as (backend, peers),
        gateway(tmp_path, config=config(backend, ping_idle_s=0.5, ping_timeout_s=10)) as gw,
    ):
        client = raw_client(gw.port)
        client.wait_for(lambda: bool(client.ours(0x9)))  # the gateway pinged the client
        (server,) = peers
        server.wait_for(lambda: bool(server.ours(0x9)))  # ... and the backend
        sent = [
            client.send(0x1, b"hello"),
            client.send(0x9, b"app ping"),
            client.send(0x2, os.urandom(300)),
        ]
        server.wait_for(lambda: any(op == 0xA for op, _, _ in client.frames))  # app's pong
        server.send(0x1, b"from the app")
        server.send(0xA, b"unsolicited app pong")
        client.wait_for(lambda: any(p == b"unsolicited app pong" for _, p, _ in client.frames))
        time.sleep(1.5)  # more keepalive rounds
        app_frames = [
            raw
            for op, payload, raw in server.frames
            if not (op == 0x9 and payload.startswith(KEEPALIVE_PREFIX))
        ]
        # Byte for byte, masks included: the client's frames; no pong of the gateway's.
        assert app_frames == sent
        assert client.ours(0xA) == server.ours(0xA) == []
        to_client = [(op, p) for op, p, _ in client.frames if op != 0x9]
        assert to_client == [
            (0xA, b"app ping"),
            (0x1, b"from the app"),
            (0xA, b"unsolicited app pong"),
        ]
        assert len(client.ours(0x9)) >= 2 and len(server.ours(0x9)) >= 2


NGINX_IDLE = """
map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://127.0.0.1:{backend};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_read_timeout 6s;
    }}
}}
"""
THROUGH_NGINX = """
[server]
listen = ["127.0.0.1:{{port}}"]
[pools.keepalive]
backends = ["127.0.0.1:{nginx}"]
ping_idle_s = 3
ping_timeout_s = 10
[pools.plain]
backends = ["127.0.0.1:{nginx}"]
[[routes]]
path_prefix = "/keepalive"
pool = "keepalive"
[[routes]]
path_prefix = "/"
pool = "plain"
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_keepalive_keeps_an_idle_websocket_alive_through_nginx_read_timeout(
    tmp_path: Path, raw_client: Callable[..., RawPeer]
) -> None:
    """nginx cuts a WebSocket quiet for proxy_read_timeout (6 s here) without a close
    frame. With ping_idle_s = 3 the gateway's pings keep it alive for 20 s; without, the
    same connection is cut at about 6 s. Both are measured, at the same time."""
    idle_s = 20.0
    cut_at: list[float] = []

    def plain_connection(url: str) -> None:
        with connect(url, open_timeout=WAIT_S, ping_interval=None) as ws:
            opened = time.monotonic()
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=idle_s + 30)
            cut_at.append(time.monotonic() - opened)

    with raw_backend() as (backend, peers):
        port = free_port()
        with (
            nginx(NGINX_IDLE.format(port=port, backend=backend), tmp_path, port),
            gateway(tmp_path, config=THROUGH_NGINX.format(nginx=port)) as gw,
        ):
            plain = threading.Thread(target=plain_connection, args=(f"{gw.url}/plain",))
            plain.start()
            client = raw_client(gw.port, "/keepalive")
            opened = time.monotonic()
            server = next(p for p in peers if p.path.startswith(b"/keepalive"))
            time.sleep(idle_s)  # the application sends nothing, nor pings
            assert not client.closed.is_set() and not server.closed.is_set()
            message = client.send(0x1, b"still here after 20 s")
            ping = client.send(0x9, b"app ping")
            server.wait_for(lambda: any(p == b"app ping" for _, p, _ in server.frames))
            client.wait_for(
                lambda: any(p == b"app ping" for op, p, _ in client.frames if op == 0xA)
            )
            survived = time.monotonic() - opened
            plain.join(WAIT_S + idle_s)
        assert survived >= idle_s
        # The close frame of the gateway's drain (SIGTERM when `gateway` ends) aside.
        sent = [
            raw for op, p, raw in server.frames if op != 0x8 and not p.startswith(KEEPALIVE_PREFIX)
        ]
        assert sent == [message, ping]
        assert server.ours(0x9) and client.ours(0x9)  # the keepalive went both ways
        assert client.ours(0xA) == server.ours(0xA) == []  # and its pongs stopped at the gateway
        (cut,) = cut_at
        print(f"keepalive on: alive after {survived:.1f} s; keepalive off: cut after {cut:.1f} s")
        assert 5.0 <= cut <= 19.0, cut  # nginx's 6 s, with room for a slow machine


# == a frozen backend ========================================================================
@pytest.mark.timeout(120)
def test_a_frozen_backend_is_detected_and_the_client_gets_a_close_frame(tmp_path: Path) -> None:
    port = free_port()
    with named_backend(tmp_path, port, "b1") as backend:
        with gateway(tmp_path, config=config(port, ping_idle_s=1, ping_timeout_s=2)) as gw:
            with connect(f"{gw.url}/", open_timeout=WAIT_S, ping_interval=None) as ws:
                assert ws.recv(timeout=WAIT_S) == "b1"
                ws.send("hello")
                assert ws.recv(timeout=WAIT_S) == "hello"
                os.kill(backend.pid, signal.SIGSTOP)
                try:
                    frozen = time.monotonic()
                    with pytest.raises(ConnectionClosed):
                        ws.recv(timeout=WAIT_S)
                    detected = time.monotonic() - frozen
                finally:
                    os.kill(backend.pid, signal.SIGCONT)
                assert ws.protocol.close_rcvd is not None  # a close frame, not a cut
                assert ws.close_code == 1011
                assert (ws.close_reason or "").startswith("peer_ping_timeout")
            line = wait_for_record(gw, lambda r: r.get("cause") == "peer_ping_timeout")
        # Within ping_idle_s + ping_timeout_s (3 s) of the freeze, plus the timers' slack.
        assert detected < 3.0 + 5.0, detected
        assert line["fault"] == "backend" and line["close_sent"] == {"client": 1011}


# == limits ==================================================================================
@pytest.mark.parametrize(("size", "closed"), [(1000, False), (1001, True)])
def test_an_oversized_message_gets_1009(tmp_path: Path, size: int, closed: bool) -> None:
    seen: list[tuple[int | None, str | None]] = []

    async def handler(conn: Any) -> None:
        try:
            async for message in conn:
                await conn.send(message)
        finally:
            seen.append((conn.close_code, conn.close_reason))

    with (
        ws_server(handler) as backend,
        gateway(tmp_path, config=config(backend, max_message_bytes=1000)) as gw,
    ):
        # Without permessage-deflate: the gateway counts the bytes on the wire.
        with connect(f"{gw.url}/", open_timeout=WAIT_S, compression=None) as ws:
            ws.send(b"x" * size)
            if not closed:
                assert ws.recv(timeout=WAIT_S) == b"x" * size
                return
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=WAIT_S)
            assert ws.protocol.close_rcvd is not None and ws.close_code == 1009
        line = wait_for_record(gw, lambda r: r.get("cause") == "message_too_big")
        assert line["fault"] == "client"
        deadline = time.monotonic() + WAIT_S
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    assert seen and seen[0][0] == 1001  # the backend heard that its client went away


# == the handshake policy ====================================================================
POLICY = """
[server]
listen = ["127.0.0.1:{{port}}"]
[pools.strict]
backends = ["127.0.0.1:{backend}"]
allowed_origins = ["https://app.example.com", "https://*.example.org"]
allowed_subprotocols = ["chat.v2"]
[pools.lenient]
backends = ["127.0.0.1:{plain}"]
allowed_subprotocols = ["chat.v2"]
subprotocol_fallback = "forward"
[[routes]]
path_prefix = "/lenient"
pool = "lenient"
[[routes]]
path_prefix = "/"
pool = "strict"
"""


def test_origin_and_subprotocol_policy(tmp_path: Path) -> None:
    with (
        ws_server(subprotocols=["admin", "chat.v2"]) as backend,
        ws_server() as plain,
        gateway(tmp_path, config=POLICY.format(backend=backend, plain=plain)) as gw,
    ):
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{gw.url}/", origin=Origin("https://evil.test"), open_timeout=WAIT_S)
        response = refused.value.response
        assert response.status_code == 403
        assert response.headers["X-Wsgate-Cause"] == "origin_not_allowed"
        with connect(
            f"{gw.url}/",
            origin=Origin("https://a.example.org"),
            subprotocols=[Subprotocol("admin"), Subprotocol("chat.v2")],
            open_timeout=WAIT_S,
        ) as ws:
            assert ws.subprotocol == "chat.v2"  # "admin" was taken out of the offer
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{gw.url}/", subprotocols=[Subprotocol("admin")], open_timeout=WAIT_S)
        assert refused.value.response.status_code == 400
        assert refused.value.response.headers["X-Wsgate-Cause"] == "subprotocol_not_allowed"
        # The lenient pool forwards without the header: the backend picks none.
        with connect(
            f"{gw.url}/lenient", subprotocols=[Subprotocol("admin")], open_timeout=WAIT_S
        ) as ws:
            assert ws.subprotocol is None
            ws.send("ok")
            assert ws.recv(timeout=WAIT_S) == "ok"
        causes = [r.get("cause") for r in records(gw) if r["event"] == "error"]
        assert causes == ["origin_not_allowed", "subprotocol_not_allowed"]


# == the gateway's closing handshake =========================================================
@pytest.mark.parametrize("frames", [False, True])
def test_drain_closes_tunnels_cleanly_with_1001(tmp_path: Path, frames: bool) -> None:
    extra = "ping_idle_s = 30" if frames else ""
    with ws_server() as backend:
        text = config(backend) + extra + "\n"
        text = text.replace("[pools.app]", "drain_timeout_s = 1\n[pools.app]")
        with gateway(tmp_path, config=text) as gw, connect(f"{gw.url}/") as ws:
            ws.send("before")
            assert ws.recv(timeout=WAIT_S) == "before"
            gw.proc.popen.terminate()  # SIGTERM, by PID
            with pytest.raises(ConnectionClosedOK):  # close frames both ways: clean
                ws.recv(timeout=WAIT_S)
            assert ws.close_code == 1001
            assert gw.proc.popen.wait(timeout=WAIT_S) == 0


# == wsgate doctor --idle ====================================================================
def test_doctor_idle_recognises_a_gateway_that_keeps_the_connection_alive(tmp_path: Path) -> None:
    with (
        ws_server(ping_interval=None) as backend,
        gateway(tmp_path, config=config(backend, ping_idle_s=1)) as gw,
    ):
        status, report = doctor(f"{gw.url}/", "--idle", "4")
    assert status == 0
    assert "idle_kept_alive" in codes(report)
    assert "keepalive ping(s)" in finding(report, "idle_kept_alive")["evidence"]
