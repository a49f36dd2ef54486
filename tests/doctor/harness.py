"""Helpers for the doctor's end-to-end tests: run `wsgate doctor` as a real process, make
test certificates with the openssl CLI, and raw TCP servers that misbehave on purpose.

Everything listens on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from wsgate.protocol import handshake

Report = dict[str, Any]


def doctor(*args: str, timeout_s: float = 120.0) -> tuple[int, Report]:
    """Run `wsgate doctor ARGS --json`; returns the exit status and the parsed report."""
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "doctor", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert proc.returncode in (0, 1), f"exit {proc.returncode}: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    report: Report = json.loads(proc.stdout)
    assert report["ok"] is (proc.returncode == 0)
    return proc.returncode, report


def doctor_text(*args: str, timeout_s: float = 120.0) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def codes(report: Report) -> list[str]:
    return [f["code"] for f in report["findings"]]


def errors(report: Report) -> list[str]:
    return [f["code"] for f in report["findings"] if f["severity"] == "error"]


def finding(report: Report, code: str) -> dict[str, str]:
    for f in report["findings"]:
        if f["code"] == code:
            return dict(f)
    raise AssertionError(f"no {code} in {codes(report)}: {json.dumps(report, indent=1)}")


def layer(report: Report, name: str) -> dict[str, Any]:
    for row in report["layers"]:
        if row["name"] == name:
            return dict(row)
    raise AssertionError(f"no layer {name} in {report['layers']}")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_cert(
    directory: Path, name: str, days: int = 90, san: str = "IP:127.0.0.1,DNS:localhost"
) -> tuple[Path, Path]:
    """A self-signed certificate and key (EC P-256). `days=-1` makes one that expired a
    day ago: `openssl x509 -req -days -1` sets notAfter before notBefore."""
    key = directory / f"{name}.key"
    cert = directory / f"{name}.pem"
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=critical,CA:TRUE\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
    _openssl(
        "x509", "-req", "-in", str(csr), "-signkey", str(key), "-days", str(days),
        "-extfile", str(ext), "-out", str(cert),
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def raw_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that runs `handle(conn)` per connection in a thread."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    port: int = server.getsockname()[1]

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            with contextlib.suppress(OSError):
                handle(conn)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(10)
        server.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def accept_value(request: bytes) -> str:
    """The Sec-WebSocket-Accept for the key in `request` ('' when it carries none)."""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return handshake.accept_value(value.strip()).decode()
    return ""


def deaf_after_101(conn: socket.socket) -> None:
    """Answer a valid 101, then read and ignore everything (no pong, no close)."""
    request = read_request(conn)
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept_value(request)}\r\n\r\n".encode()
    )
    while conn.recv(4096):
        pass


def hang_up(conn: socket.socket) -> None:
    """Read the request, then close without a word."""
    read_request(conn)


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listener that never accepts, with its accept queue full: SYNs to it are dropped,
    so a connect times out without any traffic leaving 127.0.0.1."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):  # bounded: the queue holds one or two with backlog 0
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.5)
            try:
                filler.connect(("127.0.0.1", port))
            except (TimeoutError, OSError):
                filler.close()
                break
            fillers.append(filler)
        else:
            raise RuntimeError("the accept queue never filled")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("EOF")
        data += chunk
    return data


def pong_but_no_close_reply(conn: socket.socket) -> None:
    """Answer 101 and pings (RFC 6455 section 5.5.3), but meet a close frame by closing
    TCP without sending a close frame back."""
    request = read_request(conn)
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept_value(request)}\r\n\r\n".encode()
    )
    for _ in range(100):  # bounded: the doctor sends a handful of frames
        first, second = _read_exact(conn, 2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(_read_exact(conn, 2), "big")
        elif length == 127:
            length = int.from_bytes(_read_exact(conn, 8), "big")
        mask = _read_exact(conn, 4) if second & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exact(conn, length)))
        opcode = first & 0x0F
        if opcode == 0x9 and length < 126:
            conn.sendall(bytes([0x8A, length]) + payload)
        elif opcode == 0x8:
            return


def not_http(conn: socket.socket) -> None:
    """Answer like an SSH server: bytes that are not HTTP at all."""
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    read_request(conn)


def _answer_101(conn: socket.socket) -> None:
    request = read_request(conn)
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept_value(request)}\r\n\r\n".encode()
    )


def deaf_after_quiet(quiet_s: float) -> Callable[[socket.socket], None]:
    """Like a NAT that forgets an idle flow: answer pings until the client has been quiet
    for `quiet_s`, then swallow everything without closing (no EOF, no pong)."""

    def handle(conn: socket.socket) -> None:
        _answer_101(conn)
        conn.settimeout(quiet_s)
        try:
            for _ in range(1000):  # bounded: a ping now and then until the client is quiet
                first, second = _read_exact(conn, 2)
                length = second & 0x7F
                mask = _read_exact(conn, 4) if second & 0x80 else b"\0\0\0\0"
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exact(conn, length)))
                if first & 0x0F == 0x9 and length < 126:
                    conn.sendall(bytes([0x8A, length]) + payload)
        except TimeoutError:
            pass
        conn.settimeout(30)
        while conn.recv(4096):  # deaf from here on, until the client gives up
            pass

    return handle
