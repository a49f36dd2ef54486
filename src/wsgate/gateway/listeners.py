"""The gateway's listening sockets, each by the key of its config entry (host, port,
tls): bound at start, or inherited from the gateway this one replaces (a binary
upgrade); opened and closed by a reload, which also points the TLS listeners at new
certificates; handed to a successor (`fds`); closed at stop. A listen address that
cannot be bound is a `ListenError` naming it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Callable, Iterable

from wsgate.config.diff import listener_key
from wsgate.config.model import Address
from wsgate.errors import WsgateError
from wsgate.gateway.tls import ServerTls

LISTEN_BACKLOG = 4096

ListenerKey = tuple[str, int, bool]


def os_error_reason(exc: OSError) -> str:
    """The system's words for an OSError: "Address already in use", not uvloop's longer
    "error while attempting to bind on address (...): address already in use"."""
    if isinstance(exc, socket.gaierror):
        return exc.strerror or str(exc)
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)


class ListenError(WsgateError):
    """A listen address that could not be bound; the message names it."""

    def __init__(self, address: Address, exc: OSError) -> None:
        super().__init__(f"cannot listen on {address}: {os_error_reason(exc)}")
        self.address = address


class Listeners:
    """The listeners of one gateway; each accepted connection gets a protocol from
    `factory`."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, factory: Callable[[], asyncio.Protocol]
    ) -> None:
        self.loop = loop
        self._factory = factory
        self.servers: list[asyncio.Server] = []
        # The same listeners by the key of their config entry, for a reload.
        self._by_key: dict[ListenerKey, asyncio.Server] = {}
        self._reuse_port = False
        self._inherited: dict[ListenerKey, socket.socket] = {}
        # The contexts TLS listeners were opened with: a reload points their SNI
        # callback at the new certificates (`use_certificates`).
        self._contexts: list[ssl.SSLContext] = []

    async def open_all(
        self,
        addresses: Iterable[Address],
        tls: ServerTls | None,
        handshake_timeout_s: float,
        *,
        reuse_port: bool,
        inherited: dict[ListenerKey, socket.socket] | None,
    ) -> None:
        """At start: listen on every address (on its inherited socket when there is one),
        or close what was opened and raise ListenError for the first that fails."""
        self._reuse_port = reuse_port
        self._inherited = dict(inherited or {})
        for address in addresses:
            try:
                server = await self.open(address, tls, handshake_timeout_s)
            except OSError as exc:
                self.close_all()
                raise ListenError(address, exc) from None
            self.add(address, server)
        for unused in self._inherited.values():
            unused.close()  # a listener the new config no longer has
        self._inherited.clear()

    async def open(
        self, address: Address, tls: ServerTls | None, handshake_timeout_s: float
    ) -> asyncio.Server:
        """One listener, not yet counted (`add`); TLS ones hand the handshake to `tls`,
        bounded by `handshake_timeout_s`. OSError when it cannot be had."""
        context = tls.default if address.tls and tls is not None else None
        if context is not None and context not in self._contexts:
            self._contexts.append(context)
        sock = self._inherited.pop(listener_key(address), None)
        if sock is not None:
            # Already bound and listening, its queue shared with the old gateway: not a
            # connection waiting in it is lost in the handover.
            return await self.loop.create_server(
                self._factory,
                sock=sock,
                ssl=context,
                ssl_handshake_timeout=handshake_timeout_s if context else None,
            )
        return await self.loop.create_server(
            self._factory,
            address.host,
            address.port,
            backlog=LISTEN_BACKLOG,
            reuse_port=self._reuse_port or None,
            ssl=context,
            ssl_handshake_timeout=handshake_timeout_s if context else None,
        )

    def add(self, address: Address, server: asyncio.Server) -> None:
        self.servers.append(server)
        self._by_key[listener_key(address)] = server

    def close(self, address: Address) -> None:
        """A reload: stop listening on `address` (the connections it accepted go on)."""
        closed = self._by_key.pop(listener_key(address), None)
        if closed is not None:
            closed.close()
            self.servers.remove(closed)

    def close_all(self) -> None:
        for server in self.servers:
            server.close()

    async def wait_closed(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def use_certificates(self, tls: ServerTls) -> None:
        """Every TLS listener's next handshake picks its certificate from `tls`."""
        for context in self._contexts:
            context.sni_callback = tls.on_sni

    def fds(self) -> dict[str, int]:
        """The descriptor of each listener that has exactly one socket, by its key
        ("host port tls"): what a successor inherits in a binary upgrade."""
        found = {}
        for (host, port, tls), server in self._by_key.items():
            if len(server.sockets) == 1:
                found[f"{host} {port} {int(tls)}"] = server.sockets[0].fileno()
        return found

    def first_socket(self) -> socket.socket | None:
        """A listening socket, for the descriptor probe; None before the first listens."""
        sockets = self.servers[0].sockets if self.servers else ()
        return sockets[0] if sockets else None

    def bound_addresses(self) -> list[str]:
        found = []
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                found.append(
                    f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"
                )
        return found
