"""The client connection's asyncio adapter: bytes and callbacks into `ClientCore`,
its commands out to the transports, the loop's timer and the log.

All decisions are the core's (core.py). What is left here is I/O: the client transport,
one timer handle, the `UpstreamLink` (client_upstream.py) that opens, feeds and releases
the upstream connection the core asks for until the 101, and after it the `Tunnel`,
which copies bytes without the core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Coroutine
from typing import Any, Protocol, assert_never, cast

from wsgate.gateway.client_upstream import UpstreamLink
from wsgate.gateway.commands import (
    CallSoon,
    ClientReading,
    CloseClient,
    CloseTunnel,
    Command,
    Log,
    OpenUpstream,
    ReleaseUpstream,
    SendToClient,
    SendToUpstream,
    StartTunnel,
    Wakeup,
)
from wsgate.gateway.core import ClientCore
from wsgate.gateway.pool import Backend
from wsgate.gateway.ports import GatewayView
from wsgate.gateway.tls import refuse_alpn
from wsgate.gateway.tunnel import Tunnel, make_tunnel
from wsgate.gateway.upstream_side import UpstreamSide
from wsgate.observe.log import JsonLog
from wsgate.observe.metrics import Metrics


class GatewayRuntime(GatewayView, Protocol):
    """What the adapter needs of the running gateway (server.Gateway) beyond the core's
    view: its loop, its log, the live connections (it reports each one's arrival and
    its end) and the tasks it starts."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def log(self) -> JsonLog: ...
    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def connections(self) -> Collection[ClientConnection]: ...
    def connection_opened(self, conn: ClientConnection) -> None: ...
    def connection_closed(self, conn: ClientConnection) -> None: ...
    def create_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...


class ClientConnection(asyncio.Protocol):
    # Slots, not a __dict__: a gateway holds one of these per idle WebSocket, and the
    # per-connection memory is what S4 measures.
    __slots__ = (
        "__weakref__",
        "_deadline",
        "_queue",
        "_running",
        "_timer",
        "_timer_at",
        "_tunnel",
        "_tunnel_backend",
        "_tunnel_client",
        "core",
        "gw",
        "link",
        "loop",
        "transport",
        "write_paused",
    )

    def __init__(self, gateway: GatewayRuntime) -> None:
        self.gw = gateway
        self.loop = gateway.loop
        self.transport: asyncio.Transport | None = None
        self.core: ClientCore | None = None
        self.link: UpstreamLink | None = None  # the way to a backend until the 101
        self.write_paused = False
        self._tunnel: Tunnel | None = None
        # The core's one deadline, and the loop timer that stands for it: armed for
        # `_timer_at`, at or before `_deadline`. A later or no deadline keeps the timer,
        # which re-arms or does nothing when it fires: a handshake moves its deadline
        # four times, and a cancel and a new timer each time cost more than that.
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._queue: list[Command] = []
        self._running = False
        self._tunnel_backend: Backend | None = None  # given back when the tunnel ends
        self._tunnel_client: str | None = None

    # == carrying out the core's commands ==============================================
    def run(self, commands: list[Command]) -> None:
        """Carry out commands in order; commands that come back from a call made while
        carrying them out (an idle upstream attached at once) wait their turn."""
        if not commands:
            return
        if self._running:
            self._queue.extend(commands)
            return
        self._running = True
        try:
            for command in commands:
                self._do(command)
            queue = self._queue
            while queue:
                self._do(queue.pop(0))
        finally:
            self._running = False

    def _do(self, command: Command) -> None:
        # Most frequent first; isinstance narrows the type without a cast() call.
        transport = self.transport
        if isinstance(command, SendToClient):
            if transport is not None and not transport.is_closing():
                transport.write(command.data)
        elif isinstance(command, SendToUpstream):
            if self.link is not None:
                self.link.send(command.data)
        elif isinstance(command, Wakeup):
            self._set_timer(command.at)
        elif isinstance(command, OpenUpstream):
            assert self.link is not None  # the core lives as long as its link
            self.link.open(command)
        elif isinstance(command, ReleaseUpstream):
            if self.link is not None:
                self.link.release(command)
        elif isinstance(command, StartTunnel):
            self._start_tunnel(command)
        elif isinstance(command, Log):
            self._log(command)
        elif isinstance(command, CloseClient):
            self._close_client(command.abort)
        elif isinstance(command, ClientReading):
            if transport is not None and not transport.is_closing():
                if command.on:
                    transport.resume_reading()
                else:
                    transport.pause_reading()
        elif isinstance(command, CloseTunnel):
            if self._tunnel is not None:
                self._tunnel.close(command.code, command.text, reason=command.reason)
        elif isinstance(command, CallSoon):
            self.loop.call_soon(self._proceed)
        else:  # mypy: a command added to the union and not handled here fails the check
            assert_never(command)

    def _log(self, command: Log) -> None:
        log = self.gw.log
        if command.kind == "access":
            log.access(**command.fields)
        elif command.kind == "error":
            log.error(command.name, **command.fields)
        else:
            log.event(command.name, **command.fields)

    def _set_timer(self, at: float | None) -> None:
        self._deadline = at
        if at is None or (self._timer is not None and self._timer_at <= at):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(at, self._on_timer)
        self._timer_at = at

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.core is None:
            return
        now = self.loop.time()
        if now < deadline:  # moved later since the timer was armed
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
            return
        self._deadline = None
        self.run(self.core.timer(now))

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _proceed(self) -> None:
        if self.core is not None:
            self.run(self.core.proceed(self.loop.time()))

    def _close_client(self, abort: bool) -> None:
        if self._tunnel is not None and abort:
            self._tunnel.on_client_lost()
        transport = self.transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()
        self._cancel_timer()

    def _start_tunnel(self, command: StartTunnel) -> None:
        link = self.link
        assert self.transport is not None and link is not None
        upstream = link.upstream
        assert upstream is not None
        # The core is done: the tunnel ends the connection, and gives back the counts.
        self.core = None
        self.link = None
        link.side = None
        self._cancel_timer()
        self._tunnel_backend = command.backend
        self._tunnel_client = command.client
        self._tunnel = make_tunnel(
            self.transport,
            upstream,
            cast(Backend, upstream.backend).pool.config,
            loop=self.loop,
            log=self.gw.log,
            fields=command.fields,
            idle_timeout_s=command.idle_timeout_s,
            on_closed=self._on_tunnel_closed,
        )
        self._tunnel.start(command.tail, command.early)

    def _on_tunnel_closed(self) -> None:
        backend, self._tunnel_backend = self._tunnel_backend, None
        if backend is not None:
            metrics, tunnel = self.gw.metrics, self._tunnel
            if metrics is not None and tunnel is not None:
                metrics.tunnel_closed(backend.pool.config.name, tunnel.bytes_up, tunnel.bytes_down)
            backend.pool.tunnel_closed(backend)
        client, self._tunnel_client = self._tunnel_client, None
        if client is not None:
            self.gw.client_limits.release(client)

    # == asyncio.Protocol: the client side =============================================
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        high = self.gw.config.server.tunnel_high_water_bytes
        self.transport.set_write_buffer_limits(high=high, low=high // 4)
        self.gw.connection_opened(self)
        client_ip = str(peer[0]) if peer else "-"
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is not None and refuse_alpn(
            self.transport, ssl_object, client_ip, self.gw.log
        ):
            return
        scheme = "http" if ssl_object is None else "https"
        self.link = link = UpstreamLink(self, self.loop)
        self.core = ClientCore(self.gw, client_ip, link, scheme)
        link.side = UpstreamSide(self.core)
        over = len(self.gw.connections) > self.gw.config.server.max_connections
        self.run(self.core.start(self.loop.time(), over_capacity=over))

    def data_received(self, data: bytes) -> None:
        tunnel = self._tunnel
        if tunnel is not None:
            tunnel.from_client(data)
            return
        if self.core is not None:
            self.run(self.core.client_data(data, self.loop.time()))

    def eof_received(self) -> bool | None:
        if self._tunnel is not None:
            return self._tunnel.on_client_eof()
        if self.core is None:
            return None
        commands, keep = self.core.client_eof(self.loop.time())
        self.run(commands)
        return True if keep else None

    def connection_lost(self, exc: Exception | None) -> None:
        tunnel = self._tunnel
        if tunnel is not None:
            tunnel.on_client_lost()
        self.gw.connection_closed(self)
        if self.link is not None:
            self.link.client_lost()
        if self.core is not None:
            self.run(self.core.client_lost(self.loop.time()))
        self._cancel_timer()

    def pause_writing(self) -> None:
        # The client reads slower than the backend sends: stop reading the backend.
        self.write_paused = True
        self._backend_reading(False)

    def resume_writing(self) -> None:
        self.write_paused = False
        self._backend_reading(True)

    def _backend_reading(self, on: bool) -> None:
        tunnel = self._tunnel
        if tunnel is None:
            if self.link is not None:
                self.link.reading(on)
            return
        if not tunnel.closed:
            tunnel.upstream.reading(on)
        tunnel.on_backend_reading(on)

    def create_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self.gw.create_task(coro)

    # == the gateway's view =============================================================
    def close_tunnel(self, code: int, text: str, *, reason_code: str) -> None:
        """End this connection from the gateway's side (drain): a tunnel gets a close
        frame with `code`."""
        if self._tunnel is not None:
            self._tunnel.close(code, text, reason=reason_code)
        elif self.core is not None:
            self.run(self.core.close(code, text, reason=reason_code, now=self.loop.time()))

    @property
    def tunnel_backend(self) -> Backend | None:
        """The backend this connection's tunnel goes to; None when it is no tunnel."""
        if self._tunnel is None or self._tunnel.closed:
            return None
        return self._tunnel_backend

    @property
    def idle(self) -> bool:
        return self.core is not None and self.core.idle
