"""Connections to backends: the response side of an exchange, then one half of a tunnel.

`UpstreamConnection` parses response heads with httptools and hands events to its
`sink` (the client connection it currently serves). After a 101 it stops parsing and
copies bytes to the sink's transport. `pool.Pool` opens, keeps and reuses them.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

import httptools

from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.headers import HeaderList, Headers
from wsgate.protocol.limits import head_overflows, head_tail


class ConnectionPool(Protocol):
    """What takes a connection back after a complete exchange (`pool.Pool`)."""

    def release(self, conn: UpstreamConnection) -> None: ...


class ConnectionOwner(Protocol):
    """What an upstream connection needs of the backend it belongs to (`pool.Backend`):
    to be forgotten when it closes, and the pool that takes it back."""

    @property
    def pool(self) -> ConnectionPool: ...
    def forget(self, conn: UpstreamConnection) -> None: ...


class TunnelSink(Protocol):
    """What an upstream connection reports to the tunnel it is half of."""

    def on_upstream_tunnel_data(self, data: bytes) -> None: ...
    def on_upstream_eof(self) -> None: ...
    def on_upstream_lost(self, exc: Exception | None) -> None: ...
    def on_upstream_pause_writing(self) -> None: ...
    def on_upstream_resume_writing(self) -> None: ...


class ResponseSink(Protocol):
    """What an upstream connection reports to the client connection it serves."""

    def on_response_head(
        self, status: int, reason: bytes, version: str, headers: Headers, keep_alive: bool
    ) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_complete(self) -> None: ...
    def on_upstream_upgrade(self, tail: bytes) -> None: ...
    def on_upstream_eof(self) -> None: ...
    def on_upstream_lost(self, exc: Exception | None) -> None: ...
    def on_upstream_bad_response(
        self, reason: str, *, cause: str = "upstream_bad_response"
    ) -> None: ...
    def on_upstream_pause_writing(self) -> None: ...
    def on_upstream_resume_writing(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to a backend."""

    __slots__ = (
        "__weakref__",
        "_field_bytes",
        "_head_bytes",
        "_head_limit",
        "_head_tail",
        "_headers",
        "_idle_timer",
        "_ignore_body",
        "_parser",
        "_reason",
        "backend",
        "closed",
        "got_response_bytes",
        "sink",
        "transport",
        "tunnel",
    )

    def __init__(self, backend: ConnectionOwner) -> None:
        self.backend = backend
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.tunnel: TunnelSink | None = None
        self.closed = False
        self.got_response_bytes = False
        # Dropped once the connection is a tunnel: no more heads to parse.
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._headers: Headers = HeaderList()
        self._reason = b""
        self._ignore_body = False  # a HEAD response: llhttp would wait for a body
        self._idle_timer: asyncio.TimerHandle | None = None
        # Bytes of the response head read so far (-1: in a body), against the limit
        # `attach` sets; a 1xx head ends and the next head starts the count again.
        self._head_bytes = 0
        self._field_bytes = 0  # the same, counted in the parser's callbacks
        self._head_tail = b""
        self._head_limit = 0

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.on_upstream_tunnel_data(data)
            return
        sink = self.sink
        self.got_response_bytes = True
        if sink is None:
            # Bytes on an idle keep-alive connection: the backend broke framing.
            self.close()
            return
        if self._parser is None:
            return
        if self._head_bytes >= 0:  # still in a head
            if head_overflows(self._head_bytes, self._head_tail, data, self._head_limit):
                self._refuse_head(sink)
                return
            self._head_bytes += len(data)
            self._head_tail = head_tail(self._head_tail, data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # The client side answers with start_tunnel(), or closes this connection.
            sink.on_upstream_upgrade(data[upgrade.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, ProtocolError):
                raise
            self._refuse_head(sink)
        except httptools.HttpParserError as exc:
            # Detach first: connection_lost must not report this connection a second time
            # to a client that is already retrying elsewhere.
            self.sink = None
            self.close()
            sink.on_upstream_bad_response(str(exc) or "unparsable response")

    def _refuse_head(self, sink: ResponseSink) -> None:
        """A response head over the limit: as nginx's "upstream sent too big header",
        the connection is closed and the client gets a 502 that says so."""
        self.sink = None
        self.abort()
        sink.on_upstream_bad_response(
            f"response head over {self._head_limit} bytes", cause="upstream_header_too_large"
        )

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            self.tunnel.on_upstream_eof()
            return not self.closed  # keep our write side open for the half-close
        if self.sink is not None:
            self.sink.on_upstream_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_idle_timer()
        self.backend.forget(self)
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            tunnel.on_upstream_lost(exc)
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_upstream_lost(exc)

    def pause_writing(self) -> None:
        target = self.tunnel or self.sink
        if target is not None:
            target.on_upstream_pause_writing()

    def resume_writing(self) -> None:
        target = self.tunnel or self.sink
        if target is not None:
            target.on_upstream_resume_writing()

    # -- httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        self._headers = HeaderList()
        self._reason = b""
        self._field_bytes = 0

    def on_status(self, status: bytes) -> None:
        self._reason += status
        self._field_count(len(status))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._field_count(len(name) + len(value) + 4)

    def _field_count(self, size: int) -> None:
        """Counts what the callbacks see too: a second head in the read that ended a
        1xx head escapes the raw count of data_received."""
        self._field_bytes += size
        if self._field_bytes > self._head_limit:
            raise ProtocolError("upstream_header_too_large", "response head too big")

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # httptools calls back only from feed_data
        status = parser.get_status_code()
        # A 1xx head is followed by another head; a final one by the body.
        self._head_bytes = 0 if status < 200 else -1
        self._head_tail = b""
        if self.sink is not None:
            self.sink.on_response_head(
                status,
                self._reason,
                parser.get_http_version(),
                self._headers,
                parser.should_keep_alive(),
            )
        if self._ignore_body and status >= 200:
            # The answer to HEAD has no body whatever its Content-Length says; finish the
            # message here and start a fresh parser for the next response.
            self._ignore_body = False
            self._parser = httptools.HttpResponseParser(self)
            if self.sink is not None:
                self.sink.on_response_complete()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.on_response_body(body)

    def on_message_complete(self) -> None:
        # 1xx answers (100 Continue, and 101 before the tunnel) are not the final one.
        parser = self._parser
        if self.sink is not None and parser is not None and parser.get_status_code() >= 200:
            self.sink.on_response_complete()

    # -- used by the client side ------------------------------------------------------
    def attach(self, sink: ResponseSink, *, head_request: bool, head_limit: int) -> None:
        self._cancel_idle_timer()
        self.sink = sink
        self._ignore_body = head_request
        self.got_response_bytes = False
        self._head_bytes = 0
        self._head_tail = b""
        self._head_limit = head_limit

    def detach(self) -> None:
        """No client any more. Reading resumes: the client side may have paused it for a
        slow reader, and an idle connection must see the backend's FIN or stray bytes."""
        self.sink = None
        self.reading(True)

    def reading(self, on: bool) -> None:
        """Read from the backend again, or stop: its client reads slower than it sends."""
        transport = self.transport
        if transport is None:
            return
        if not on:
            transport.pause_reading()
        elif not self.closed and not transport.is_closing():
            transport.resume_reading()

    def start_tunnel(self, tunnel: TunnelSink) -> None:
        """After a 101: from now on every byte goes to `tunnel`, unparsed."""
        self.sink = None
        self.tunnel = tunnel
        # Called from the parser's upgrade exception, after feed_data has returned.
        self._parser = None
        self._headers = HeaderList()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.backend.forget(self)
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.backend.forget(self)
        if self.transport is not None:
            self.transport.abort()

    def start_idle_timer(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._idle_timer = loop.call_later(timeout_s, self.close)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
