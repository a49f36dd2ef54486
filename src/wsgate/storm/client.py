"""The storm's client: one WebSocket connection, as lean as a handshake can be.

The handshake is written and read by hand on an `asyncio.Protocol` (no streams, no
library handshake) so that thousands of them cost the client little; its result is one
outcome key from `storm.stats`. After a 101, the Sans-I/O `ClientProtocol` of the
`websockets` library, started in the OPEN state, frames the echo messages and the close.
Call `open_connection`, then `Connection.round_trip` / `hold` / `close`.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import WebSocketURI

from wsgate.storm import stats

MAX_HEAD_BYTES = 16 * 1024
CLOSE_TIMEOUT_S = 5.0
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


@dataclass(frozen=True, slots=True)
class Target:
    """Where and what to ask: `connect_host` is an address already checked by the CLI."""

    connect_host: str
    port: int
    path: str = "/"
    host_header: str = "127.0.0.1"
    origin: str | None = None
    subprotocol: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def uri(self) -> WebSocketURI:
        path, _, query = self.path.partition("?")
        return WebSocketURI(False, self.connect_host, self.port, path or "/", query)


def upgrade_request(target: Target, key: str) -> bytes:
    """The GET request of RFC 6455 section 4.1, with the target's extra headers."""
    lines = [
        f"GET {target.path} HTTP/1.1",
        f"Host: {target.host_header}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if target.origin:
        lines.append(f"Origin: {target.origin}")
    if target.subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {target.subprotocol}")
    lines.extend(f"{name}: {value}" for name, value in target.headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def accept_for(key: str) -> str:
    digest = hashlib.sha1(
        (key + WS_GUID).encode("ascii")
    ).digest()  # RFC 6455 section 4.2.2, not security
    return base64.b64encode(digest).decode("ascii")


def parse_head(head: bytes) -> tuple[int, dict[str, str]] | None:
    """Status and lower-cased headers of a response head, or None if it is not HTTP/1.x."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def classify(head: bytes, key: str) -> str:
    """The outcome key of a complete response head."""
    parsed = parse_head(head)
    if parsed is None:
        return stats.BAD_RESPONSE
    status, headers = parsed
    if status == 101:
        return (
            stats.OK if headers.get("sec-websocket-accept") == accept_for(key) else stats.BAD_ACCEPT
        )
    return stats.status_outcome(
        status, headers.get("x-wsgate-cause"), retry_after="retry-after" in headers
    )


def error_outcome(exc: BaseException) -> str:
    """The outcome key of a failure before a complete response head."""
    if isinstance(exc, TimeoutError):
        return stats.TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return stats.REFUSED
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return stats.RESET
    if isinstance(exc, _ClosedError):
        return stats.CLOSED
    if isinstance(exc, _TooLongError):
        return stats.BAD_RESPONSE
    if isinstance(exc, OSError) and exc.errno is not None:
        return "error " + errno.errorcode.get(exc.errno, str(exc.errno))
    return "error " + type(exc).__name__


class _ClosedError(Exception):
    """The peer closed before the response head was complete."""


class _TooLongError(Exception):
    """The response head did not end within MAX_HEAD_BYTES."""


@dataclass
class _Wire(asyncio.Protocol):
    """Socket events for one connection: the head until it is complete, then frames."""

    loop: asyncio.AbstractEventLoop
    head: asyncio.Future[bytes] = field(init=False)
    transport: asyncio.Transport | None = None
    buffer: bytearray = field(default_factory=bytearray)
    ws: ClientProtocol | None = None
    frames: list[Frame] = field(default_factory=list)
    waiter: asyncio.Future[None] | None = None
    lost: asyncio.Future[None] = field(init=False)

    def __post_init__(self) -> None:
        self.head = self.loop.create_future()
        self.lost = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self._feed(data)
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end >= 0:
            if not self.head.done():
                self.head.set_result(bytes(self.buffer[: end + 4]))
            del self.buffer[: end + 4]
        elif len(self.buffer) > MAX_HEAD_BYTES and not self.head.done():
            self.head.set_exception(_TooLongError())

    def start_frames(self, ws: ClientProtocol) -> None:
        self.ws = ws
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        assert self.ws is not None
        self.ws.receive_data(data)
        self._after_events()

    def _after_events(self) -> None:
        assert self.ws is not None
        for event in self.ws.events_received():
            if isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY):
                self.frames.append(event)
        self.flush()  # pongs and the close reply the protocol queued
        self._wake()

    def flush(self) -> None:
        if self.ws is None or self.transport is None or self.transport.is_closing():
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def eof_received(self) -> bool | None:
        if not self.head.done():
            self.head.set_exception(_ClosedError())
        if self.ws is not None:
            self.ws.receive_eof()
            self._after_events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(exc if exc is not None else _ClosedError())
        if not self.lost.done():
            self.lost.set_result(None)
        self._wake()

    async def next_frame(self, timeout_s: float) -> Frame | None:
        """The next data frame, or None if the connection ended first."""
        async with asyncio.timeout(timeout_s):
            while not self.frames:
                if self.lost.done() or (self.ws is not None and self.ws.state is State.CLOSED):
                    return None
                self.waiter = self.loop.create_future()
                await self.waiter
            return self.frames.pop(0)


@dataclass
class Connection:
    """An open WebSocket connection after a 101."""

    wire: _Wire

    async def round_trip(self, payload: bytes, timeout_s: float) -> float:
        """Send one binary message and wait for the next one back; the seconds it took.
        Raises TimeoutError, or ConnectionError if the connection ended first."""
        ws = self.wire.ws
        assert ws is not None
        if ws.state is not State.OPEN:
            raise ConnectionError("connection is not open")
        began = time.monotonic()
        ws.send_binary(payload)
        self.wire.flush()
        frame = await self.wire.next_frame(timeout_s)
        if frame is None:
            raise ConnectionError("connection closed during a round trip")
        return time.monotonic() - began

    async def hold(self, seconds: float) -> bool:
        """Keep the connection open for `seconds`; False if it ended before."""
        if seconds <= 0:
            return not self.wire.lost.done()
        try:
            async with asyncio.timeout(seconds):
                await asyncio.shield(self.wire.lost)
        except TimeoutError:
            return True
        return False

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Close handshake (1000), then wait for the server to drop TCP first, so the
        TIME_WAIT state lands on the server side as RFC 6455 section 7.1.1 intends."""
        wire = self.wire
        ws = wire.ws
        assert ws is not None and wire.transport is not None
        try:
            if ws.state is State.OPEN:
                ws.send_close(1000)
                wire.flush()
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(wire.lost)
        except (TimeoutError, OSError):
            pass
        finally:
            wire.transport.close()

    def abort(self) -> None:
        if self.wire.transport is not None:
            self.wire.transport.abort()


async def open_connection(target: Target, timeout_s: float) -> tuple[str, Connection | None]:
    """Connect and handshake within `timeout_s`: the outcome key, and the open connection
    when the outcome is a 101 (the caller must close it)."""
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    wire = _Wire(loop)
    try:
        async with asyncio.timeout(timeout_s):
            await loop.create_connection(lambda: wire, target.connect_host, target.port)
            assert wire.transport is not None
            wire.transport.write(upgrade_request(target, key))
            head = await wire.head
    except (Exception, asyncio.CancelledError) as exc:
        if wire.transport is not None:
            wire.transport.abort()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return error_outcome(exc), None
    outcome = classify(head, key)
    if outcome != stats.OK:
        assert wire.transport is not None
        wire.transport.close()
        return outcome, None
    wire.start_frames(ClientProtocol(target.uri(), state=State.OPEN, max_size=None))
    return outcome, Connection(wire)
