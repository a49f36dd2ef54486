"""A client connection: parse request heads (httptools), route, forward, relay the
response, and after a valid 101 copy bytes both ways as a tunnel.

States, in order: HEAD (reading a request head) -> EXCHANGE (a request forwarded, its
response relayed; keep-alive returns to HEAD) -> UPGRADING (a 101 checked and relayed,
waiting for the tunnel bytes) -> TUNNEL -> CLOSED. Every failure before the response
head reaches the client becomes an explained error response (see `responses.py`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import httptools

from wsgate.gateway.dispatch import IDEMPOTENT_METHODS, BackendChoice
from wsgate.gateway.exchange import Request, State, ms
from wsgate.gateway.pool import Backend
from wsgate.gateway.responses import error_response
from wsgate.gateway.tunnel import Tunnel
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.policy.buckets import jittered_retry_after
from wsgate.policy.clients import client_address
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.forward import (
    Framing,
    client_framing,
    forward_request_head,
    interim_head,
    request_framing,
    response_framing,
    response_head,
    switching_protocols_head,
)
from wsgate.protocol.handshake import check_upgrade_request, check_upgrade_response, wants_websocket
from wsgate.protocol.headers import HeaderList, Headers, get_one
from wsgate.protocol.limits import head_overflows, head_tail
from wsgate.protocol.proxy_protocol import parse_proxy_header
from wsgate.protocol.request import check_request_head

if TYPE_CHECKING:
    from wsgate.gateway.server import Gateway

MAX_PIPELINED_REQUESTS = 16


class ClientConnection(BackendChoice, asyncio.Protocol):
    # Slots, not a __dict__: a gateway holds one of these per idle WebSocket, and the
    # per-connection memory is what S4 measures.
    __slots__ = (
        "__weakref__",
        "_body_at",
        "_body_timer",
        "_client_counted",
        "_client_eof",
        "_client_write_paused",
        "_close_after",
        "_early",
        "_field_bytes",
        "_framing_out",
        "_head_bytes",
        "_head_tail",
        "_headers",
        "_parser",
        "_parsing",
        "_paused",
        "_proxy_header",
        "_queue",
        "_reading_head",
        "_response_started",
        "_response_timer",
        "_stalled_bytes",
        "_timer",
        "_tunnel",
        "_tunnel_backend",
        "_upstream_framing",
        "_upstream_reusable",
        "_url",
        "active",
        "client_ip",
        "gw",
        "loop",
        "state",
        "transport",
    )

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.loop = gateway.loop
        self.transport: asyncio.Transport | None = None
        self.client_ip = "-"
        self.state = State.HEAD
        # Dropped once the connection is a tunnel: no more heads to parse.
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: Headers = HeaderList()
        self._parsing: Request | None = None
        self._queue: list[Request] = []  # pipelined requests: at most MAX_PIPELINED_REQUESTS
        self.active: Request | None = None
        self.upstream: UpstreamConnection | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._paused: set[str] = set()
        self._client_write_paused = False
        self._head_bytes = 0
        self._head_tail = b""
        self._reading_head = True
        # Bytes of the head (or trailer) fields parsed so far, counted in the callbacks:
        # the raw count below misses a head that starts behind another in one read.
        self._field_bytes = 0
        # Bytes read since the last body byte: what a chunked body's trailer can grow.
        self._stalled_bytes = 0
        self._body_at = 0.0  # when the body being read last made progress
        self._body_timer: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._response_timer: asyncio.TimerHandle | None = None
        self._framing_out = Framing.NONE
        self._upstream_framing = Framing.NONE
        self._response_started = False
        self._upstream_reusable = False
        self._close_after = False
        self._client_eof = False  # half-closed: answer what it sent, then close
        self._early = b""
        self._tunnel: Tunnel | None = None
        # Bytes of a PROXY protocol header still being read; None when not expected.
        self._proxy_header: bytes | None = b"" if gateway.config.server.proxy_protocol else None
        self._client_counted: str | None = None  # counted by the per-client limits
        self._tunnel_backend: Backend | None = None  # counted as a tunnel on it

    # == asyncio.Protocol: client side ================================================
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if peer else "-"
        high = self.gw.config.server.tunnel_high_water_bytes
        self.transport.set_write_buffer_limits(high=high, low=high // 4)
        self.gw.connections.add(self)
        if len(self.gw.connections) > self.gw.config.server.max_connections:
            self.state = State.EXCHANGE
            self._fail(
                "at_capacity",
                f"The gateway holds {self.gw.config.server.max_connections} connections.",
                retry_after_s=jittered_retry_after(5.0, self.gw.rng),
            )
            return
        self._set_timer(self.gw.config.server.header_timeout_s, self._on_header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._proxy_header is not None:
            data = self._read_proxy_header(data)
            if not data:
                return
        if self._tunnel is not None:
            self._tunnel.from_client(data)
            return
        if self.state is State.CLOSED:
            return
        if self._parser is None:
            self._hold_early(data)
            return
        if self._reading_head and not self._check_head_size(data):
            return
        self._stalled_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # The parser stops at an upgrade request: what follows is the tunnel's.
            self._parser = None
            self._hold_early(data[upgrade.args[0] :])
            last = self._queue[-1] if self._queue else self.active
            if last is None or last.ws_key is None:
                # Not a WebSocket upgrade (h2c, say): it is answered as plain HTTP, and the
                # connection closes after that answer, since nothing more can be parsed.
                self._close_after = True
        except httptools.HttpParserCallbackError as exc:
            # A callback refused a head or trailer over the limit (see _count_field).
            refused = exc.__context__
            if not isinstance(refused, ProtocolError):
                raise
            self._refuse(refused.cause, refused.reason)
        except httptools.HttpParserError as exc:
            self._protocol_error(exc)
        else:
            if self._parsing is not None and self._stalled_bytes > self._header_limit:
                # A chunked body that stopped carrying data: its trailer (or chunk
                # extensions) would otherwise grow without bound inside the parser.
                self._refuse("trailer_too_large", f"The limit is {self._header_limit} bytes.")

    def _hold_early(self, data: bytes) -> None:
        """Keep bytes that came behind an upgrade request for the tunnel. Reading goes on
        while the handshake waits, so that a client who gives up (closes) is noticed and
        leaves the queue; only a client that sends a lot before its 101 is paused."""
        self._early += data
        if len(self._early) > self.gw.config.server.tunnel_high_water_bytes:
            self._pause("upgrade")

    def eof_received(self) -> bool | None:
        if self._tunnel is not None:
            return self._tunnel.on_client_eof()
        active = self.active
        if active is not None and active.ws_key is not None and not self._response_started:
            # A WebSocket client that closes before its 101 has given up: free its place in
            # line or its handshake slot instead of completing a handshake for nobody.
            self._close()
            return None
        if active is not None and active.complete and self.state is State.EXCHANGE:
            self._client_eof = True  # a half-closed client still gets its responses
            return True
        self._close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tunnel is not None:
            self._tunnel.on_client_lost()
        self.state = State.CLOSED
        self._cancel_timers()
        self.gw.connections.discard(self)
        if self._connect_task is not None:
            self._connect_task.cancel()
        self._release_everything()
        upstream, self.upstream = self.upstream, None
        if upstream is not None and self._tunnel is None:
            upstream.detach()
            upstream.abort()

    def pause_writing(self) -> None:
        # The client reads slower than the backend sends: stop reading the backend.
        self._client_write_paused = True
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self._client_write_paused = False
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None and not upstream.closed:
            upstream.transport.resume_reading()

    # == httptools callbacks: request parsing =========================================
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = HeaderList()
        self._field_bytes = 0
        if self._timer is not None and self.active is None and not self._queue:
            # A keep-alive connection woke up: the header timeout starts now.
            self._set_timer(self.gw.config.server.header_timeout_s, self._on_header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_field(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_field(len(name) + len(value) + 4)
        if self._reading_head:
            self._headers.append((name, value))
        # Trailer fields (after a chunked body) are counted, not kept: they are not
        # forwarded, and the request's headers were already sent.

    @property
    def _header_limit(self) -> int:
        return self.gw.config.server.max_header_bytes

    def _count_field(self, size: int) -> None:
        self._field_bytes += size
        if self._field_bytes > self._header_limit:
            cause = "header_too_large" if self._reading_head else "trailer_too_large"
            raise ProtocolError(cause, f"The limit is {self._header_limit} bytes.")

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # httptools calls back only from feed_data
        self._reading_head = False
        self._field_bytes = 0  # from here on it counts the trailer
        self._stalled_bytes = 0
        if self.active is None and not self._queue:
            self._cancel_timer()
        method = parser.get_method()
        headers = self._headers
        now = self.loop.time()
        request = Request(
            method=method,
            target=self._url,
            version=parser.get_http_version(),
            headers=headers,
            keep_alive=parser.should_keep_alive(),
            framing=request_framing(headers),
            received_at=now,
            upgrade=parser.should_upgrade(),
        )
        try:
            check_request_head(request.version, headers, upgrade=request.upgrade)
            if wants_websocket(headers):
                request.ws_key = check_upgrade_request(method, request.version, headers)
        except ProtocolError as exc:
            request.error = exc
        if request.framing is not Framing.NONE and not request.upgrade:
            self._body_at = now
            self._arm_body_timer(self.gw.config.server.body_timeout_s)
        self._parsing = request
        self._queue.append(request)
        if len(self._queue) >= MAX_PIPELINED_REQUESTS:
            self._pause("pipeline")
        if self.active is None:
            self._start_next()

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        if request is None:
            return
        self._stalled_bytes = 0
        self._body_at = self.loop.time()
        if request is self.active and request.head_sent and self.upstream is not None:
            self._send_body(body)
            return
        request.body.append(body)
        request.buffered += len(body)
        if request.buffered > self.gw.config.server.tunnel_high_water_bytes:
            self._pause("body")

    def on_message_complete(self) -> None:
        request = self._parsing
        self._parsing = None
        self._reading_head = True
        self._head_bytes = 0
        self._head_tail = b""
        self._cancel_body_timer()
        if request is None:
            return
        request.complete = True
        if request is self.active and request.head_sent and self.upstream is not None:
            if request.framing is Framing.CHUNKED:
                self.upstream.write(b"0\r\n\r\n")
            if not self._response_started:
                self._start_response_timer(request)

    # == exchange: route, connect, forward ============================================
    def _start_next(self) -> None:
        if self.active is not None or not self._queue or self.state is State.CLOSED:
            return
        request = self._queue.pop(0)
        self._resume("pipeline")
        self.active = request
        self.state = State.EXCHANGE
        self._response_started = False
        if request.error is not None:
            self._fail(request.error.cause, request.error.reason)
            return
        if self.gw.draining:
            self._fail("shutting_down", "", retry_after_s=1)
            return
        pool_name = self.gw.router.pool_for(get_one(request.headers, b"host"), request.target)
        if pool_name is None:
            host = (get_one(request.headers, b"host") or b"").decode("latin-1")
            path = request.target.split(b"?", 1)[0].decode("latin-1")
            self._fail("no_route", f"Host {host!r}, path {path!r}.")
            return
        pool = request.pool = self.gw.pools[pool_name]
        request.client = client_address(
            self.client_ip, get_one(request.headers, b"x-forwarded-for"), self.gw.trusted_proxies
        )
        if request.ws_key is None:
            self._pick_for_request(request)
            return
        now = self.loop.time()
        wait_s = self.gw.client_limits.admit(request.client, now)
        if wait_s is not None:
            self._fail(
                "client_rate_limited",
                f"Client {request.client} is over its connection or handshake limit.",
                retry_after_s=jittered_retry_after(wait_s, pool.rng),
            )
            return
        self._client_counted = request.client
        pool.budget.on_attempt(now)
        self._admit(request)

    def _attach(self, request: Request, conn: UpstreamConnection) -> None:
        self.upstream = conn
        conn.attach(
            self,
            head_request=request.method == b"HEAD",
            head_limit=self.gw.config.server.max_response_header_bytes,
        )
        if self._client_write_paused and conn.transport is not None:
            conn.transport.pause_reading()
        head = forward_request_head(
            request.method,
            request.target,
            request.headers,
            client_ip=self.client_ip,
            scheme="http",
            websocket=request.ws_key is not None,
            framing=request.framing,
            default_host=str(conn.backend.address),
        )
        conn.write(head)
        request.head_sent = True
        request.head_sent_at = self.loop.time()
        for part in request.body:
            self._send_body(part)
        request.body.clear()
        request.buffered = 0
        self._resume("body")
        if request.complete:
            if request.framing is Framing.CHUNKED:
                conn.write(b"0\r\n\r\n")
            self._start_response_timer(request)

    def _send_body(self, body: bytes) -> None:
        assert self.active is not None and self.upstream is not None
        if self.active.framing is Framing.CHUNKED:
            if body:
                self.upstream.write(b"%x\r\n" % len(body) + body + b"\r\n")
        else:
            self.upstream.write(body)

    def _start_response_timer(self, request: Request) -> None:
        assert request.pool is not None
        timeout = request.pool.config.response_timeout_s
        self._cancel_response_timer()
        self._response_timer = self.loop.call_later(timeout, self._on_response_timeout, timeout)

    def _on_response_timeout(self, timeout: float) -> None:
        self._response_timer = None
        if self._response_started or self.state is not State.EXCHANGE:
            return
        request = self.active
        if request is None:
            return
        had_slot = request.slot is not None
        self._release_slot(request, "dropped")  # a handshake slot's release counts the failure
        if request.backend is not None and not had_slot:
            request.backend.pool.note_failure(request.backend)
        backend = request.backend.name if request.backend else None
        self._fail(
            "upstream_handshake_timeout",
            f"Backend {backend} sent no response head within {timeout:g} s.",
        )

    # == ResponseSink: events from the upstream connection ============================
    def on_response_head(
        self, status: int, reason: bytes, version: str, headers: Headers, keep_alive: bool
    ) -> None:
        request = self.active
        if request is None or self.transport is None:
            return
        if status == 101:
            self._cancel_response_timer()
            # Count the tunnel before the slot frees: freeing it admits the next waiter,
            # which must see this connection in max_connections_per_backend.
            self._on_switching_protocols(request, reason, headers)
            self._release_slot(request, "ok")  # nothing left to release if that failed
            return
        if status < 200:
            if request.version == "1.1":
                self.transport.write(interim_head(status, reason, headers))
            return
        self._cancel_response_timer()
        pool = request.pool
        if (
            request.ws_key is not None
            and pool is not None
            and status in pool.config.retry_on_status
            and self._can_retry(request)
        ):
            # A 5xx to a handshake before anything reached the client: try elsewhere.
            upstream, self.upstream = self.upstream, None
            if upstream is not None:
                upstream.detach()
                upstream.close()
            self._retry_or_fail(
                request, "upstream_bad_response", f"Backend answered {status}.", outcome="failed"
            )
            return
        if request.slot is not None:
            self._release_slot(request, "ok")
        elif request.backend is not None and status < 500:
            request.backend.pool.note_success(request.backend)
        self._response_started = True
        request.status = status
        upstream_framing = response_framing(request.method, status, headers)
        framing = client_framing(upstream_framing, request.version)
        if request.ws_key is not None:
            self._close_after = True  # a refused upgrade: the client may have sent frames
        keep = (
            request.keep_alive
            and framing is not Framing.CLOSE
            and not self._close_after
            and not (self._client_eof and not self._queue)  # its last answer: close after
            and not self.gw.draining
        )
        self._close_after = not keep
        self._upstream_framing = upstream_framing
        self._framing_out = framing
        # A connection that carried an upgrade request (refused, since this is not a
        # 101) is never reused: the backend and the gateway may disagree on where that
        # request ended, and the next request on it would be read as its continuation.
        self._upstream_reusable = (
            keep_alive and upstream_framing is not Framing.CLOSE and not request.upgrade
        )
        self.transport.write(
            response_head(
                status,
                reason,
                headers,
                framing=framing,
                keep_alive=keep,
                client_version=request.version,
            )
        )

    def on_response_body(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or not self._response_started:
            return
        if self._framing_out is Framing.CHUNKED:
            if data:
                transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            transport.write(data)

    def on_response_complete(self) -> None:
        request = self.active
        if request is None or not self._response_started or self.transport is None:
            return
        if self._framing_out is Framing.CHUNKED:
            self.transport.write(b"0\r\n\r\n")
        self._cancel_response_timer()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            assert request.pool is not None
            if self._upstream_reusable and request.complete:
                request.pool.release(upstream)
            else:
                upstream.detach()
                upstream.close()
        self._log_access(request)
        self.active = None
        if self._close_after or not request.complete or (self._client_eof and not self._queue):
            self._close()
            return
        self.state = State.HEAD
        if self._queue:
            self.loop.call_soon(self._start_next)
        else:
            self._set_timer(self.gw.config.server.keepalive_timeout_s, self._close)
        self._resume("body")

    def on_upstream_upgrade(self, tail: bytes) -> None:
        request = self.active
        upstream = self.upstream
        if self.state is not State.UPGRADING or self.transport is None or upstream is None:
            return
        assert request is not None and request.pool is not None
        self.state = State.TUNNEL
        early, self._early = self._early, b""
        self._tunnel = Tunnel(
            self.transport,
            upstream,
            loop=self.loop,
            log=self.gw.log,
            fields={
                "client": request.client,
                "pool": request.pool.config.name,
                "backend": request.backend.name if request.backend else None,
            },
            idle_timeout_s=request.pool.config.tunnel_idle_timeout_s,
            on_closed=self._on_tunnel_closed,
        )
        self._tunnel.start(tail, early)
        self._resume("upgrade")
        # The heads are done with; a long-lived idle tunnel should not carry them.
        self._parser = None
        self._headers = request.headers = HeaderList()

    def _on_tunnel_closed(self) -> None:
        self.state = State.CLOSED
        self.upstream = None
        self._cancel_timers()
        self._release_everything()

    def on_upstream_eof(self) -> None:
        # A body that runs to the end of the connection ends here; any other body was cut
        # short, and connection_lost follows and aborts the client.
        if (
            self.state is State.EXCHANGE
            and self._response_started
            and self._upstream_framing is Framing.CLOSE
        ):
            self._upstream_reusable = False
            self.on_response_complete()

    def on_upstream_lost(self, exc: Exception | None) -> None:
        if self.state is State.UPGRADING:
            self._abort()
            return
        if self.state is not State.EXCHANGE:
            return
        request = self.active
        self.upstream = None
        if request is None:
            return
        if self._response_started:
            self._abort()  # a truncated body: the client must not take it as complete
            return
        conn_reused = request.head_sent and not request.stale_retry_done
        if (
            conn_reused
            and request.framing is Framing.NONE
            and request.connect_ms is None
            and request.method in IDEMPOTENT_METHODS
        ):
            # A reused keep-alive connection that the backend had just closed: retry once on
            # a fresh connection, as nothing reached the backend's application.
            request.stale_retry_done = True
            request.head_sent = False
            assert request.backend is not None
            self._cancel_response_timer()
            self._connect_task = self.loop.create_task(self._connect(request, request.backend))
            return
        backend = request.backend.name if request.backend else None
        detail = f"Backend {backend} closed the connection" + (f" ({exc})." if exc else ".")
        self._cancel_response_timer()
        self._retry_or_fail(request, "upstream_closed_early", detail, outcome="failed")

    def on_upstream_bad_response(
        self, reason: str, *, cause: str = "upstream_bad_response"
    ) -> None:
        if self._response_started:
            self._abort()
            return
        request = self.active
        if request is None:
            return
        self._cancel_response_timer()
        backend = request.backend.name if request.backend else None
        self.upstream = None
        detail = f"Backend {backend}: {reason}."
        if cause == "upstream_header_too_large":
            # Another try would bring the same head: the backend's fault, not retried.
            had_slot = request.slot is not None
            self._release_slot(request, "failed")  # a slot's release counts the failure
            if not had_slot and request.backend is not None:
                request.backend.pool.note_failure(request.backend)
            self._fail(cause, detail)
            return
        self._retry_or_fail(request, cause, detail, outcome="failed")

    def on_upstream_pause_writing(self) -> None:
        self._pause("upstream_full")

    def on_upstream_resume_writing(self) -> None:
        self._resume("upstream_full")

    # == tunnel =======================================================================
    def _on_switching_protocols(self, request: Request, reason: bytes, headers: Headers) -> None:
        if request.ws_key is None:
            self._fail("upstream_bad_response", "Backend answered 101 to a plain request.")
            return
        try:
            check_upgrade_response(request.ws_key, headers)
        except ProtocolError as exc:
            backend = request.backend.name if request.backend else None
            self._release_slot(request, "failed")  # a wrong Accept is the backend's fault
            self._fail(exc.cause, f"Backend {backend}: {exc.reason}.")
            return
        assert self.transport is not None
        if request.backend is not None:
            self._tunnel_backend = request.backend
            request.backend.pool.tunnel_opened(request.backend)
        request.status = 101
        self._response_started = True
        self.state = State.UPGRADING
        self.transport.write(switching_protocols_head(reason, headers))
        self._log_access(request)

    def close_tunnel(self, code: int, text: str, *, reason_code: str) -> None:
        """End this connection from the gateway's side: a tunnel gets a close frame with
        `code` (see Tunnel.close); anything else is simply closed."""
        if self._tunnel is not None:
            self._tunnel.close(code, text, reason=reason_code)
        else:
            self._close()

    # == errors, limits and timers ====================================================
    def _check_head_size(self, data: bytes) -> bool:
        limit = self._header_limit
        if head_overflows(self._head_bytes, self._head_tail, data, limit):
            self._refuse("header_too_large", f"The limit is {limit} bytes.")
            return False
        self._head_bytes += len(data)
        self._head_tail = head_tail(self._head_tail, data)
        return True

    def _read_proxy_header(self, data: bytes) -> bytes:
        """Consume the PROXY header at the start of the connection; return what follows."""
        assert self._proxy_header is not None
        buffered = self._proxy_header + data
        try:
            parsed = parse_proxy_header(buffered)
        except ProtocolError as exc:
            self._proxy_header = None
            self.state = State.EXCHANGE
            self._fail(exc.cause, exc.reason)
            return b""
        if parsed is None:
            self._proxy_header = buffered
            return b""
        address, length = parsed
        self._proxy_header = None
        if address is not None:
            self.client_ip = address
        return buffered[length:]

    def _protocol_error(self, exc: Exception) -> None:
        self._refuse("bad_request", f"Parser: {exc}.")

    def _refuse(self, cause: str, detail: str) -> None:
        """Stop reading at a request that cannot be parsed or breaks a limit. It is
        answered in its turn, after the requests before it on this connection, and the
        connection closes after that answer: nothing behind it can be trusted."""
        self._parser = None
        self._cancel_body_timer()
        self._pause("refused")
        request, self._parsing = self._parsing, None
        error = ProtocolError(cause, detail)
        if request is None:
            # The failure is in a head: a stand-in request takes that head's turn.
            request = Request(
                method=b"",
                target=b"",
                version="1.1",
                headers=HeaderList(),
                keep_alive=False,
                framing=Framing.NONE,
                received_at=self.loop.time(),
                error=error,
            )
            self._queue.append(request)
        elif request is self.active:
            # Its head may be with a backend already, which waits for the rest: not the
            # backend's failure, so the slot is released as aborted by _fail.
            if self._response_started:
                self._abort()
            else:
                self._fail(cause, detail)
            return
        else:
            request.error = error
        request.complete = True
        self._start_next()

    def _arm_body_timer(self, delay: float) -> None:
        self._cancel_body_timer()
        self._body_timer = self.loop.call_later(delay, self._on_body_timeout)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _on_body_timeout(self) -> None:
        """No body bytes for body_timeout_s: the client stalled. Time spent paused by
        the gateway itself (backpressure, a full pipeline) does not count."""
        self._body_timer = None
        if self._parsing is None or self.state is State.CLOSED:
            return
        timeout = self.gw.config.server.body_timeout_s
        now = self.loop.time()
        if self._paused:
            self._body_at = now
        left = self._body_at + timeout - now
        if left > 0:
            self._arm_body_timer(left)
            return
        self._refuse("body_timeout", f"No body bytes arrived for {timeout:g} s.")

    def _on_header_timeout(self) -> None:
        self._timer = None
        if self.state is State.HEAD and self.active is None:
            timeout = self.gw.config.server.header_timeout_s
            self.state = State.EXCHANGE
            self._fail("header_timeout", f"The limit is {timeout:g} s.")

    def _release_everything(self) -> None:
        """Give back what this connection holds in pools and limits; safe to call twice."""
        request = self.active
        if request is not None:
            if request.pool is not None and request.queued_at is not None:
                request.pool.cancel(self)
            self._release_slot(request, "aborted")
        backend, self._tunnel_backend = self._tunnel_backend, None
        if backend is not None:
            backend.pool.tunnel_closed(backend)
        client, self._client_counted = self._client_counted, None
        if client is not None:
            self.gw.client_limits.release(client)

    def _fail(self, cause: str, detail: str, *, retry_after_s: int | None = None) -> None:
        """Answer with an explained error when nothing of a response was sent; then close."""
        request = self.active
        self.gw.log.error(
            cause,
            client=self.client_ip,
            method=request.method.decode("latin-1") if request else None,
            target=request.target.decode("latin-1") if request else None,
            pool=request.pool.config.name if request and request.pool else None,
            backend=request.backend.name if request and request.backend else None,
            detail=detail,
            connect_ms=ms(request.connect_ms) if request else None,
            total_ms=ms((self.loop.time() - request.received_at) * 1000) if request else None,
        )
        transport = self.transport
        if transport is not None and not self._response_started and not transport.is_closing():
            extra: tuple[tuple[str, str], ...] = ()
            if cause == "unsupported_version":
                extra = (("Sec-WebSocket-Version", "13"),)
            transport.write(
                error_response(cause, detail, retry_after_s=retry_after_s, extra_headers=extra)
            )
            self._response_started = True
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.detach()
            upstream.abort()
        self._close()

    def _log_access(self, request: Request) -> None:
        if not self.gw.log.access_enabled:
            return  # skip building the fields: this runs once per handshake
        now = self.loop.time()
        self.gw.log.access(
            client=self.client_ip,
            method=request.method.decode("latin-1"),
            target=request.target.decode("latin-1"),
            status=request.status,
            pool=request.pool.config.name if request.pool else None,
            backend=request.backend.name if request.backend else None,
            upgrade=request.ws_key is not None,
            connect_ms=ms(request.connect_ms),
            response_ms=ms((now - request.head_sent_at) * 1000) if request.head_sent else None,
            total_ms=ms((now - request.received_at) * 1000),
        )

    def _pause(self, reason: str) -> None:
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self._paused:
            return
        self._paused.discard(reason)
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _set_timer(self, delay: float, callback: object) -> None:
        self._cancel_timer()
        assert callable(callback)
        self._timer = self.loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _cancel_response_timer(self) -> None:
        if self._response_timer is not None:
            self._response_timer.cancel()
            self._response_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_timer()
        self._cancel_response_timer()
        self._cancel_body_timer()

    def _close(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close(1001, "", reason="closed")
            return
        self.state = State.CLOSED
        self._cancel_timers()
        self._release_everything()
        if self.transport is not None:
            self.transport.close()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.detach()
            upstream.close()

    def _abort(self) -> None:
        if self._tunnel is not None:
            self._tunnel.on_client_lost()
        self.state = State.CLOSED
        self._cancel_timers()
        self._release_everything()
        if self.transport is not None:
            self.transport.abort()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.detach()
            upstream.abort()

    @property
    def idle(self) -> bool:
        """Between requests on a keep-alive connection: safe to close at shutdown."""
        return self.state is State.HEAD and self.active is None and not self._queue
