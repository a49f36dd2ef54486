"""The open WebSocket after a 101: ping, echo and the closing handshake, plus whole
handshakes on fresh connections for --burst and --idle-bisect.

Frames go through a `websockets` Sans-I/O `ClientProtocol` started in the OPEN state, so
pings from the server are answered and close frames parsed exactly as a client would.
Every wait is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from wsgate.doctor.observations import (
    AnswerKind,
    CloseObs,
    EchoObs,
    PingObs,
    Settings,
    Target,
)
from wsgate.doctor.probe import (
    Link,
    build_request,
    connect_tcp,
    failed_101,
    now_ms,
    open_link,
    read_answer,
)

PING_PAYLOAD = b"wsgate-doctor"


@dataclass
class Conn:
    """An open WebSocket: the stream plus a websockets protocol for the frames."""

    link: Link
    proto: ClientProtocol
    frames: list[Frame] = field(default_factory=list)
    eof: bool = False
    reset: bool = False

    @classmethod
    def opened(cls, link: Link, target: Target, leftover: bytes) -> Conn:
        proto = ClientProtocol(parse_uri(target.url), state=State.OPEN, max_size=None)
        conn = cls(link, proto)
        if leftover:
            conn._feed(leftover)
        return conn

    def _feed(self, data: bytes) -> None:
        self.proto.receive_data(data)
        self.frames.extend(e for e in self.proto.events_received() if isinstance(e, Frame))
        self.flush()

    def flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk and not self.link.writer.is_closing():
                self.link.writer.write(chunk)

    def _ended(self) -> None:
        if not self.eof:
            self.eof = True
            self.proto.receive_eof()
            self.frames.extend(e for e in self.proto.events_received() if isinstance(e, Frame))

    async def pump(self, deadline: float) -> bool:
        """Read once, until `deadline` (loop time). False when nothing came in time."""
        if self.eof:
            return False
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        try:
            data = await asyncio.wait_for(self.link.reader.read(65536), remaining)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True
            self._ended()
            return True
        except (ssl.SSLError, OSError):
            self._ended()
            return True
        if data:
            self._feed(data)
        else:
            self._ended()
        return True

    def close_frame(self) -> tuple[int, str] | None:
        received = self.proto.close_rcvd
        return None if received is None else (received.code, received.reason)

    def abort(self) -> None:
        self.link.writer.close()


async def ping(conn: Conn, timeout_s: float) -> PingObs:
    """Send a ping and wait for its pong (RFC 6455 section 5.5.3)."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = loop.time() + timeout_s
    if conn.eof or conn.proto.state is not State.OPEN:
        return PingObs(False, 0.0, "the connection was already closed")
    seen = len(conn.frames)
    conn.proto.send_ping(PING_PAYLOAD)
    conn.flush()
    while True:
        for frame in conn.frames[seen:]:
            if frame.opcode is Opcode.PONG and frame.data == PING_PAYLOAD:
                return PingObs(True, now_ms(start))
        seen = len(conn.frames)
        if conn.eof:
            why = "reset" if conn.reset else "closed"
            close = conn.close_frame()
            if close is not None:
                why = f"closed with close frame {close[0]} {close[1]!r}"
            return PingObs(False, now_ms(start), f"the connection was {why} instead of a pong")
        if not await conn.pump(deadline):
            return PingObs(False, now_ms(start), f"no pong within {timeout_s:g} s")


async def echo(conn: Conn, text: str, timeout_s: float) -> EchoObs:
    """Send one text message and wait for any data message back."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = loop.time() + timeout_s
    seen = len(conn.frames)
    conn.proto.send_text(text.encode())
    conn.flush()
    while True:
        for frame in conn.frames[seen:]:
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                received = bytes(frame.data).decode("utf-8", "replace")
                return EchoObs(text, True, now_ms(start), received)
        seen = len(conn.frames)
        if conn.eof or not await conn.pump(deadline):
            return EchoObs(text, False, now_ms(start))


async def close(conn: Conn, timeout_s: float) -> CloseObs:
    """The closing handshake (RFC 6455 section 7.1.2): send 1000, expect a close frame
    back, then the server's end of TCP."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = loop.time() + timeout_s
    try:
        if conn.proto.state is State.OPEN:
            conn.proto.send_close(1000)
            conn.flush()
        while not conn.eof and await conn.pump(deadline):
            pass
    finally:
        conn.abort()
    received = conn.close_frame()
    if received is not None:
        return CloseObs(now_ms(start), True, received[0])
    error = "the server closed TCP without a close frame"
    if not conn.eof:
        error = f"no close frame within {timeout_s:g} s"
    return CloseObs(now_ms(start), False, error=error)


@dataclass
class Handshake:
    """One whole opening handshake on its own connection (for --burst and --idle-bisect)."""

    outcome: str
    ms: float
    conn: Conn | None = None


async def handshake(
    address: str, target: Target, settings: Settings, ctx: ssl.SSLContext | None
) -> Handshake:
    """TCP, TLS, upgrade request and 101 check; `outcome` is '101' or what went wrong
    ('bad 101' for a 101 that a client would fail: see `probe.failed_101`)."""
    start = time.monotonic()
    attempt, sock = await connect_tcp(address, target.port, settings.timeout_s)
    if sock is None:
        return Handshake(f"tcp {attempt.outcome}", now_ms(start))
    link, tls = await open_link(sock, target, settings, ctx)
    if link is None:
        failure = tls.failure if tls is not None else "failed"
        return Handshake(f"tls {failure}", now_ms(start))
    request, key = build_request(target, settings)
    answer, rest = await read_answer(link, request, settings.timeout_s)
    if answer.kind is not AnswerKind.RESPONSE:
        link.close()
        return Handshake(str(answer.kind), now_ms(start))
    if answer.status != 101:
        link.close()
        return Handshake(f"http {answer.status}", now_ms(start))
    if failed_101(answer, key, settings) is not None:
        link.close()
        return Handshake("bad 101", now_ms(start))
    return Handshake("101", now_ms(start), Conn.opened(link, target, rest))


# A connection the doctor opened only to count or to time gets this long to close.
GOODBYE_WAIT_S = 2.0


async def goodbye(conn: Conn, timeout_s: float) -> None:
    """Close politely (so servers do not log aborted connections), waiting briefly."""
    with contextlib.suppress(Exception):
        if not conn.eof:
            await close(conn, min(timeout_s, GOODBYE_WAIT_S))
    conn.abort()
