"""The gateway's lifetime: listeners, the set of live connections, graceful drain.

Shutdown runs in a fixed order: turn away the handshakes queued for a slot (503
shutting_down), close idle keep-alive connections, let exchanges and tunnels finish for
`drain_timeout_s` while new arrivals are answered 503 shutting_down, then stop listening,
close the remaining tunnels with close code 1001 (going away) and abort what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import random
import signal
import socket
from typing import Any

from wsgate.config.model import Address, Config
from wsgate.errors import WsgateError
from wsgate.gateway.client import ClientConnection
from wsgate.gateway.pool import FD_LOG_INTERVAL_S, OUT_OF_DESCRIPTORS, Pool, open_files_limit
from wsgate.gateway.router import Router
from wsgate.observe.log import JsonLog, RateLimitedEvent
from wsgate.policy.clients import ClientLimits
from wsgate.protocol.frames import CLOSE_GOING_AWAY

LISTEN_BACKLOG = 4096
FD_PROBE_S = 1.0  # how often to check that a file descriptor is to be had
# While draining: how long a connection that arrived may stay idle (its request not yet
# read) before it is closed; one that sends its request in time gets 503 shutting_down.
ARRIVAL_GRACE_S = 1.0


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


class Gateway:
    def __init__(self, config: Config, log: JsonLog | None = None) -> None:
        self.config = config
        self.log = log or JsonLog(access=config.server.access_log)
        self.loop = asyncio.get_running_loop()
        self.router = Router(config.routes)
        server = config.server
        high = server.tunnel_high_water_bytes
        self.pools = {name: Pool(pool, high, self.log) for name, pool in config.pools.items()}
        self.client_limits = ClientLimits(
            server.client_max_connections,
            server.client_handshake_rate,
            server.client_handshake_burst,
        )
        self.trusted_proxies = [
            ipaddress.ip_network(n, strict=False) for n in server.trusted_proxies
        ]
        self.rng = random.Random()
        self.connections: set[ClientConnection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.draining = False
        self._servers: list[asyncio.Server] = []
        self._accept_log = RateLimitedEvent(self.log, "accept_failed", FD_LOG_INTERVAL_S, self.loop)
        self._fd_probe: asyncio.TimerHandle | None = None

    async def start(self, *, reuse_port: bool = False) -> None:
        self.loop.set_exception_handler(self._on_loop_exception)
        for address in self.config.server.listen:
            try:
                server = await self.loop.create_server(
                    lambda: ClientConnection(self),
                    address.host,
                    address.port,
                    backlog=LISTEN_BACKLOG,
                    reuse_port=reuse_port or None,
                )
            except OSError as exc:
                for opened in self._servers:
                    opened.close()
                raise ListenError(address, exc) from None
            self._servers.append(server)
        for pool in self.pools.values():
            pool.start_checks()
        self._sweep()
        self._probe_descriptors()
        self.log.event(
            "listening",
            addresses=[str(a) for a in self.bound_addresses()],
            open_files_limit=open_files_limit(),
        )

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An accept() that failed for lack of descriptors becomes one rate-limited line
        (asyncio's own loop reports it here, many times a second); the rest goes to the
        default handler."""
        exc = context.get("exception")
        message = str(context.get("message", ""))
        if isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS and "accept" in message:
            self._accept_log.emit(
                errno=errno.errorcode[exc.errno],
                open_files_limit=open_files_limit(),
                detail=f"{message}: {exc.strerror or exc}.",
            )
            return
        loop.default_exception_handler(context)

    def _probe_descriptors(self) -> None:
        """uvloop never reports an accept() that failed for lack of descriptors: libuv
        then accepts and closes the waiting connections itself, and those clients see
        their connection closed without a word. So once a second, see whether a
        descriptor is to be had; when none is, accepts are failing: say so."""
        self._fd_probe = self.loop.call_later(FD_PROBE_S, self._probe_descriptors)
        sockets = self._servers[0].sockets if self._servers else ()
        if not sockets:
            return
        try:
            os.close(os.dup(sockets[0].fileno()))
        except OSError as exc:
            if exc.errno in OUT_OF_DESCRIPTORS:
                self._accept_log.emit(
                    errno=errno.errorcode[exc.errno],
                    open_files_limit=open_files_limit(),
                    detail="The gateway holds as many file descriptors as its limit allows: "
                    "new connections are closed unanswered until some close.",
                )

    def _sweep(self) -> None:
        """Drop per-client state that no longer limits anybody, once a minute."""
        self.client_limits.sweep(self.loop.time())
        self._sweeper = self.loop.call_later(60.0, self._sweep)

    def bound_addresses(self) -> list[str]:
        found = []
        for server in self._servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                found.append(
                    f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"
                )
        return found

    async def drain(self, timeout_s: float | None = None) -> None:
        """Turn away queued handshakes, let live connections finish, then close the rest.

        The listeners stay open until the end, so that a client that connects meanwhile
        gets 503 shutting_down with a Retry-After (from `ClientConnection`) rather than a
        refused connection."""
        timeout = self.config.server.drain_timeout_s if timeout_s is None else timeout_s
        self.draining = True
        self.log.event(
            "draining",
            connections=len(self.connections),
            queued=sum(len(pool.queue) for pool in self.pools.values()),
            timeout_s=timeout,
        )
        for pool in self.pools.values():
            pool.turn_away_waiters()
        deadline = self.loop.time() + timeout
        # Idle keep-alive connections close at once; one that arrives during the drain
        # gets some time to send its request, which is then answered shutting_down.
        idle_since: dict[ClientConnection, float] = {}
        grace = 0.0
        while self.connections and self.loop.time() < deadline:
            now = self.loop.time()
            idle_since = {c: idle_since.get(c, now) for c in self.connections if c.idle}
            for conn, since in idle_since.items():
                if now - since >= grace:
                    conn.close_tunnel(CLOSE_GOING_AWAY, "", reason_code="shutdown")
            grace = ARRIVAL_GRACE_S
            await asyncio.sleep(0.05)
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.close_tunnel(CLOSE_GOING_AWAY, "server shutting down", reason_code="shutdown")
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._fd_probe is not None:
            self._fd_probe.cancel()
        self._accept_log.close()
        for pool in self.pools.values():
            await pool.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self.log.event("stopped")


SIGHUP_DETAIL = (
    "Reloading the config is not supported yet: SIGHUP changes nothing. "
    "Restart the gateway (SIGTERM drains it) to load a new config."
)
PARENT_CHECK_S = 1.0


def log_sighup(log: JsonLog) -> None:
    """SIGHUP is logged and ignored until reload exists; by default it would kill the
    gateway and cut every tunnel (a terminal hangup, or `systemctl reload`)."""
    log.event("sighup_ignored", detail=SIGHUP_DETAIL)


async def serve_until_signalled(
    config: Config, *, reuse_port: bool = False, parent_pid: int | None = None
) -> None:
    """Run a gateway until SIGINT or SIGTERM, then drain. SIGHUP is logged and ignored.
    A worker (`parent_pid` set) also drains when its parent is gone: the parent asks the
    kernel for a SIGTERM then (PR_SET_PDEATHSIG), and this check covers the rest."""
    loop = asyncio.get_running_loop()
    gateway = Gateway(config)
    stop = asyncio.Event()
    watch: asyncio.TimerHandle | None = None

    def parent_gone() -> bool:
        if parent_pid is None or os.getppid() == parent_pid or stop.is_set():
            return False
        gateway.log.event("parent_gone", parent_pid=parent_pid)
        return True

    def on_stop_signal() -> None:
        parent_gone()  # says why, when the SIGTERM is the parent's death signal
        stop.set()

    def check_parent() -> None:
        nonlocal watch
        if parent_gone():
            stop.set()
            return
        watch = loop.call_later(PARENT_CHECK_S, check_parent)

    # Before listening: a signal that comes as soon as the port answers finds them.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_stop_signal)
    loop.add_signal_handler(signal.SIGHUP, log_sighup, gateway.log)
    await gateway.start(reuse_port=reuse_port)
    if parent_pid is not None:
        check_parent()
    await stop.wait()
    if watch is not None:
        watch.cancel()
    await gateway.drain()
