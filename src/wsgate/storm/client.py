"""The storm's client: one WebSocket connection, as lean as a handshake can be.

The handshake runs on an `asyncio.Protocol` (no streams, no library handshake) so that
thousands of them cost the client little; its bytes are built, parsed and checked by
`protocol.client_handshake`, and its result is one outcome key from `storm.stats`. After
a 101, the Sans-I/O `ClientProtocol` of the `websockets` library, started in the OPEN
state, frames the echo messages and the close.
Call `open_connection`, then `Connection.round_trip` / `hold` / `close`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import WebSocketURI

from wsgate.errors import WsgateError
from wsgate.protocol.client_handshake import (
    ResponseHead,
    build_request,
    check_101,
    make_key,
    parse_response_head,
)
from wsgate.protocol.errors import ProtocolError
from wsgate.storm import stats

MAX_HEAD_BYTES = 16 * 1024
CLOSE_TIMEOUT_S = 5.0


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
    # wss://: TLS to `server_name` (SNI and the name verified), trusting the system's CAs
    # or `cafile`; `insecure` verifies nothing. Plain data, so that a Target pickles to
    # the worker processes; each builds its context once (`tls_context`).
    tls: bool = False
    server_name: str = ""
    cafile: str | None = None
    insecure: bool = False

    def uri(self) -> WebSocketURI:
        path, _, query = self.path.partition("?")
        return WebSocketURI(self.tls, self.connect_host, self.port, path or "/", query)


@functools.cache
def tls_context(cafile: str | None, insecure: bool) -> ssl.SSLContext:
    """The client context of a wss:// storm, one per process and settings."""
    ctx = ssl.create_default_context(cafile=cafile)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def upgrade_request(target: Target, key: bytes) -> bytes:
    """The GET request of RFC 6455 section 4.1, with the target's extra headers."""
    before, after = _around_key(target)
    if not after:  # the target's own Sec-WebSocket-Key replaced the field
        return _request(target, key)
    return before + key + after


def _request(target: Target, key: bytes) -> bytes:
    return build_request(
        target.path,
        target.host_header,
        key,
        target.headers,
        origin=target.origin,
        subprotocols=(target.subprotocol,) if target.subprotocol else (),
    )


_KEY_SLOT = make_key(bytes(16))
_KEY_FIELD = b"\r\nSec-WebSocket-Key: "


@functools.lru_cache(maxsize=16)
def _around_key(target: Target) -> tuple[bytes, bytes]:
    """The target's request cut where the key goes: a storm sends it thousands of times
    and only the key changes, so it is built once. The field is found by its whole line,
    which no header value can fake (build_request refuses CR and LF in values)."""
    request = _request(target, _KEY_SLOT)
    at = request.find(_KEY_FIELD + _KEY_SLOT + b"\r\n")
    if at < 0:
        return request, b""
    cut = at + len(_KEY_FIELD)
    return request[:cut], request[cut + len(_KEY_SLOT) :]


def classify(head: ResponseHead, key: bytes, target: Target) -> str:
    """The outcome key of a complete response head."""
    if head.status == 101:
        offered = (target.subprotocol,) if target.subprotocol else ()
        try:
            check_101(key, head, offered)
        except ProtocolError:
            return stats.BAD_ACCEPT
        return stats.OK
    cause: str | None = None
    retry_after = False
    for name, value in head.headers:  # one pass: this runs for every refused handshake
        lower = name.lower()
        if lower == b"x-wsgate-cause":
            cause = value.decode("latin-1")
        elif lower == b"retry-after":
            retry_after = True
    return stats.status_outcome(head.status, cause, retry_after=retry_after)


def retry_after_of(head: ResponseHead) -> int | None:
    """The Retry-After seconds a refused handshake was told, if any (for the report)."""
    if head.status == 101:
        return None
    for name, value in head.headers:
        if name.lower() == b"retry-after":
            return stats.retry_after_seconds(value)
    return None


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
    if isinstance(exc, ProtocolError):  # not HTTP, or a head over MAX_HEAD_BYTES
        return stats.BAD_RESPONSE
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "error TLS certificate not verified"
    if isinstance(exc, ssl.SSLError):
        return f"error TLS {exc.reason or type(exc).__name__}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return "error " + errno.errorcode.get(exc.errno, str(exc.errno))
    return "error " + type(exc).__name__


class _ClosedError(WsgateError):
    """The peer closed before the response head was complete."""


@dataclass
class _Wire(asyncio.Protocol):
    """Socket events for one connection: the head until it is complete, then frames."""

    loop: asyncio.AbstractEventLoop
    head: asyncio.Future[ResponseHead] = field(init=False)
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
        if self.head.done():  # frames that came before start_frames: kept for it
            return
        try:
            head = parse_response_head(self.buffer, MAX_HEAD_BYTES)
        except ProtocolError as exc:
            self.head.set_exception(exc)
            return
        if head is not None:
            self.head.set_result(head)
            del self.buffer[: head.size]

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

    def server_close(self) -> tuple[int, str] | None:
        """The close code and reason the server sent, (1006, "") if the connection ended
        without one, None while it is open. Right after `open_connection` a close here is
        an overload answer: a 101 and a close frame (1013 "retry-after=N; ...") at once."""
        ws = self.wire.ws
        if ws is not None and ws.close_rcvd is not None:
            return ws.close_rcvd.code, ws.close_rcvd.reason
        if self.wire.lost.done():
            return 1006, ""
        return None


async def open_connection(
    target: Target, timeout_s: float
) -> tuple[str, Connection | None, int | None]:
    """Connect and handshake within `timeout_s`: the outcome key, the open connection
    when the outcome is a 101 (the caller must close it), and the Retry-After seconds of a
    refusal that carried one."""
    loop = asyncio.get_running_loop()
    key = make_key(os.urandom(16))
    wire = _Wire(loop)
    try:
        async with asyncio.timeout(timeout_s):
            if target.tls:
                await loop.create_connection(
                    lambda: wire,
                    target.connect_host,
                    target.port,
                    ssl=tls_context(target.cafile, target.insecure),
                    server_hostname=target.server_name or target.connect_host,
                )
            else:
                await loop.create_connection(lambda: wire, target.connect_host, target.port)
            assert wire.transport is not None
            wire.transport.write(upgrade_request(target, key))
            head = await wire.head
    except (Exception, asyncio.CancelledError) as exc:
        if wire.transport is not None:
            wire.transport.abort()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return error_outcome(exc), None, None
    outcome = classify(head, key, target)
    if outcome != stats.OK:
        assert wire.transport is not None
        wire.transport.close()
        return outcome, None, retry_after_of(head)
    wire.start_frames(ClientProtocol(target.uri(), state=State.OPEN, max_size=None))
    return outcome, Connection(wire), None
