"""Connections to backends: the response side of an exchange, then one half of a tunnel.

`UpstreamConnection` parses response heads with httptools and hands events to its
`sink` (the client connection it currently serves). After a 101 it stops parsing and
copies bytes to the sink's transport. `BackendPool` keeps idle keep-alive connections
per backend and opens new ones with a connect timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from wsgate.config.model import Address, PoolConfig
from wsgate.gateway.balance import RoundRobin
from wsgate.protocol.headers import Headers

IDLE_UPSTREAM_TIMEOUT_S = 60.0


class ResponseSink(Protocol):
    """What an upstream connection reports to the client connection it serves."""

    def on_response_head(
        self, status: int, reason: bytes, version: str, headers: Headers, keep_alive: bool
    ) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_complete(self) -> None: ...
    def on_upstream_upgrade(self, tail: bytes) -> None: ...
    def on_upstream_tunnel_data(self, data: bytes) -> None: ...
    def on_upstream_eof(self) -> None: ...
    def on_upstream_lost(self, exc: Exception | None) -> None: ...
    def on_upstream_bad_response(self, reason: str) -> None: ...
    def on_upstream_pause_writing(self) -> None: ...
    def on_upstream_resume_writing(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to a backend."""

    def __init__(self, backend: Address, pool: BackendPool) -> None:
        self.backend = backend
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.closed = False
        self.tunnel = False
        self.got_response_bytes = False
        self.requests_served = 0
        self._parser = httptools.HttpResponseParser(self)
        self._headers: Headers = []
        self._reason = b""
        self._ignore_body = False  # a HEAD response: llhttp would wait for a body
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if self.tunnel:
            if sink is not None:
                sink.on_upstream_tunnel_data(data)
            return
        self.got_response_bytes = True
        if sink is None:
            # Bytes on an idle keep-alive connection: the backend broke framing.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.tunnel = True
            sink.on_upstream_upgrade(data[upgrade.args[0] :])
        except httptools.HttpParserError as exc:
            self.close()
            sink.on_upstream_bad_response(str(exc) or "unparsable response")

    def eof_received(self) -> bool | None:
        if self.sink is not None:
            self.sink.on_upstream_eof()
        # Keep the transport open only for a tunnel's half-close.
        return self.tunnel and not self.closed

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_idle_timer()
        self.pool.forget(self)
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_upstream_lost(exc)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_resume_writing()

    # -- httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        self._headers = []
        self._reason = b""

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
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
        if self.sink is not None and self._parser.get_status_code() >= 200:
            self.sink.on_response_complete()

    # -- used by the client side ------------------------------------------------------
    def attach(self, sink: ResponseSink, *, head_request: bool) -> None:
        self._cancel_idle_timer()
        self.sink = sink
        self._ignore_body = head_request
        self.got_response_bytes = False

    def detach(self) -> None:
        self.sink = None

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.forget(self)
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()

    def start_idle_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._idle_timer = loop.call_later(IDLE_UPSTREAM_TIMEOUT_S, self.close)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None


class ConnectError(Exception):
    """A connect that failed; `cause` is the catalogue code to answer with."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


class BackendPool:
    """A pool's backends at runtime: choice of backend and idle connections to reuse."""

    def __init__(self, config: PoolConfig, high_water: int) -> None:
        self.config = config
        self.balancer: RoundRobin[Address] = RoundRobin(config.backends)
        self._idle: dict[Address, list[UpstreamConnection]] = {b: [] for b in config.backends}
        self._open: set[UpstreamConnection] = set()
        self._high_water = high_water

    def take_idle(self, backend: Address) -> UpstreamConnection | None:
        idle = self._idle[backend]
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def connect(self, backend: Address) -> UpstreamConnection:
        """A new connection to `backend`, or ConnectError with the cause."""
        loop = asyncio.get_running_loop()
        factory: Callable[[], UpstreamConnection] = lambda: UpstreamConnection(backend, self)  # noqa: E731
        timeout = self.config.connect_timeout_s
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(factory, backend.host, backend.port)
        except TimeoutError:
            raise ConnectError(
                "upstream_connect_timeout",
                f"Backend {backend} did not accept within {timeout:g} s.",
            ) from None
        except ConnectionRefusedError:
            raise ConnectError(
                "upstream_connect_refused", f"Backend {backend} refused the connection."
            ) from None
        except OSError as exc:
            raise ConnectError(
                "upstream_connect_failed", f"Backend {backend}: {exc.strerror or exc}."
            ) from None
        assert conn.transport is not None
        conn.transport.set_write_buffer_limits(high=self._high_water, low=self._high_water // 4)
        self._open.add(conn)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection after a complete exchange; keep it if there is room."""
        conn.detach()
        idle = self._idle[conn.backend]
        if conn.closed or len(idle) >= self.config.max_idle_per_backend:
            conn.close()
            return
        conn.requests_served += 1
        idle.append(conn)
        conn.start_idle_timer(asyncio.get_running_loop())

    def forget(self, conn: UpstreamConnection) -> None:
        self._open.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle[conn.backend].remove(conn)

    def close_all(self) -> None:
        for conn in list(self._open):
            conn.close()
