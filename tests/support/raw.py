"""Misbehaving backends made of plain sockets: each accepted connection is handed to a
function in its own thread. For the gateway's error paths (garbage, silence, early
close, a wrong Sec-WebSocket-Accept)."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

from wsgate.protocol.client_handshake import build_request

Behaviour = Callable[[socket.socket], None]


def read_head(conn: socket.socket, limit: int = 65536) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@contextlib.contextmanager
def raw_server(behaviour: Behaviour, backlog: int = 16) -> Iterator[int]:
    """Listen on 127.0.0.1; run `behaviour(conn)` per connection; yields the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(backlog)
    listener.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve_one(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            behaviour(conn)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()


@contextlib.contextmanager
def full_backlog_listener() -> Iterator[int]:
    """A port whose accept queue is full: new connects are never answered (SYNs dropped),
    so a client sees a connect timeout without any traffic leaving 127.0.0.1."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(4):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def raw_request(port: int, data: bytes, timeout_s: float = 20.0) -> bytes:
    """Send `data` to 127.0.0.1:port and read until the peer closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


KEY = base64.b64encode(b"0123456789abcdef").decode()


def upgrade_request(path: str = "/", host: str = "gw.test", **headers: str) -> bytes:
    """A WebSocket upgrade request; `Sec_WebSocket_Version="8"` changes a field, an empty
    value drops it, other names are added."""
    changes = [(name.replace("_", "-"), value or None) for name, value in headers.items()]
    return build_request(path, host, KEY.encode(), changes)
