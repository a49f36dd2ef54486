"""The gateway's lifetime: listeners, the live connections and tasks, graceful drain.

The gateway moves through four phases, each move allowed by one table (`GATEWAY_MOVES`)
and made by one method:

    RUNNING --begin_drain()--> DRAINING --stop()--> STOPPING --_stopped()--> STOPPED

    DRAINING: /readyz says no (the phase is not running), turn away the handshakes
        queued for a slot (503 shutting_down), close idle keep-alive connections now and
        each one that goes idle later, answer new arrivals 503 shutting_down (the
        listeners stay open). After `drain_grace_s`, for load balancers to notice, close
        the tunnels at a pace (`drain_window_s` or `drain_rate_per_s`, see
        policy/pacing.py) with `drain_close_code`, so that their clients come back spread
        out; wait, on an event and not a timer, for the last connection to leave (but no
        sooner than the grace) or for `drain_timeout_s`.
    STOPPING: stop listening, close the remaining tunnels with close code 1001 (going
        away) and the other connections, cancel and await the connect tasks, give the
        connections `CLOSE_GRACE_S` to go, abort what is left, close the pools.

`drain()` runs the whole sequence. Every connection (`connections`) and every task the
connections start (`tasks`) is tracked here, so that STOPPING leaves nothing behind. The
listening sockets are `Listeners` (listeners.py), the paced tunnel closes `Drains`
(drains.py), the timers apart from any connection (the per-client sweep, the descriptor
watch) `Upkeep` (upkeep.py), and a reload (`reload`, SIGHUP) is carried out by reload.py.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import random
import socket
from collections.abc import Coroutine
from importlib import resources
from pathlib import Path
from typing import Any

from wsgate.config.model import Config
from wsgate.gateway.admin import AdminServer
from wsgate.gateway.client import ClientConnection
from wsgate.gateway.dial import open_files_limit
from wsgate.gateway.drains import Drains
from wsgate.gateway.listeners import ListenError, Listeners
from wsgate.gateway.monitor import ErrorRecorder, LocalSource, Monitor
from wsgate.gateway.pool import Pool
from wsgate.gateway.reload import reload
from wsgate.gateway.router import Router
from wsgate.gateway.states import BadTransitionError
from wsgate.gateway.tls import ServerTls
from wsgate.gateway.upkeep import Upkeep
from wsgate.observe.log import JsonLog
from wsgate.observe.metrics import Metrics
from wsgate.policy.clients import ClientLimits
from wsgate.policy.pacing import drain_window
from wsgate.protocol.frames import CLOSE_GOING_AWAY, CloseCode

# While draining: how long a connection that arrived may stay idle (its request not yet
# read) before it is closed; one that sends its request in time gets 503 shutting_down.
ARRIVAL_GRACE_S = 1.0
# Once stopping: how long the closed connections have to go (a close frame to flush, the
# TCP close) before they are aborted.
CLOSE_GRACE_S = 1.0


class GatewayPhase(enum.Enum):
    RUNNING = "running"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"


GATEWAY_MOVES: dict[GatewayPhase, frozenset[GatewayPhase]] = {
    GatewayPhase.RUNNING: frozenset({GatewayPhase.DRAINING}),
    GatewayPhase.DRAINING: frozenset({GatewayPhase.STOPPING}),
    GatewayPhase.STOPPING: frozenset({GatewayPhase.STOPPED}),
    GatewayPhase.STOPPED: frozenset(),
}


class Gateway:
    def __init__(self, config: Config, log: JsonLog | None = None) -> None:
        self.config = config
        self.log = log or JsonLog(access=config.server.access_log)
        self.loop = asyncio.get_running_loop()
        self.router = Router(config.routes)
        server = config.server
        high = server.tunnel_high_water_bytes
        admin = config.admin
        # Metrics and the latest errors exist only for the admin listener: without one,
        # the hot path counts nothing.
        self.metrics = Metrics() if admin.enabled and admin.metrics else None
        self.recorder = ErrorRecorder(self.metrics) if admin.enabled else None
        if self.recorder is not None:
            self.log.observer = self.recorder
        # Certificates first: a chain that does not load stops the start (ConfigError).
        self.tls = ServerTls(config.tls, config.source) if config.tls.certificates else None
        self.pools = {
            name: Pool(pool, high, self.log, self.metrics) for name, pool in config.pools.items()
        }
        self.monitor: Monitor | None = None
        self.admin: AdminServer | None = None
        # Paced tunnel closes under way: the drain's, the admin API's, a reload's.
        self.drains = Drains(self)
        self.client_limits = ClientLimits(
            server.client_max_connections,
            server.client_handshake_rate,
            server.client_handshake_burst,
        )
        self.trusted_proxies = [
            ipaddress.ip_network(n, strict=False) for n in server.trusted_proxies
        ]
        self.rng = random.Random()
        # The reconnecting browser client, served at server.client_script_path.
        self.client_script = (
            resources.files("wsgate.gateway").joinpath("wsgate-client.js").read_bytes()
        )
        self.phase = GatewayPhase.RUNNING
        # What STOPPING must end: the live client connections and the tasks they started.
        self.connections: set[ClientConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        # Set when the last connection leaves once draining: what the drain waits on.
        self._emptied = asyncio.Event()
        # Connections that arrived during the drain, each with its ARRIVAL_GRACE_S timer.
        self._arrivals: dict[ClientConnection, asyncio.TimerHandle] = {}
        self.listeners = Listeners(self.loop, lambda: ClientConnection(self))
        # Pools a reload removed: closed at stop, once their tunnels are gone.
        self.retired: list[Pool] = []
        self.upkeep = Upkeep(
            self.loop, self.log, self.client_limits.sweep, self.listeners.first_socket
        )

    async def start(
        self,
        *,
        reuse_port: bool = False,
        run_dir: Path | None = None,
        inherited: dict[tuple[str, int, bool], socket.socket] | None = None,
    ) -> None:
        """Listen, start the health checks and, with an `[admin]` table, the monitor and
        the admin listener. `run_dir`: this is one worker of `serve --workers N`, whose
        admin process reads its snapshots there; the worker serves no admin listener.
        `inherited`: listening sockets handed over by the gateway this one replaces (a
        binary upgrade), used for the listeners with the same key instead of binding."""
        self.loop.set_exception_handler(self.upkeep.on_loop_exception)
        await self.listeners.open_all(
            self.config.server.listen,
            self.tls,
            self.config.server.header_timeout_s,
            reuse_port=reuse_port,
            inherited=inherited,
        )
        for pool in self.pools.values():
            pool.start_checks()
            if pool.config.tls_insecure:
                self.log.event(
                    "tls_insecure_backend",
                    pool=pool.config.name,
                    detail="tls_insecure: the backends' certificates are not verified; "
                    "anyone on the path can read and change the traffic.",
                )
        self.upkeep.start()
        self.log.event(
            "listening",
            addresses=[str(a) for a in self.bound_addresses()],
            open_files_limit=open_files_limit(),
        )
        if self.config.admin.enabled:
            self.monitor = Monitor(self, run_dir)
            self.monitor.start()
            if run_dir is None:
                self.admin = AdminServer(LocalSource(self), self.config.admin, self.log)
                try:
                    await self.admin.start()
                except OSError as exc:
                    self.monitor.stop()
                    self.listeners.close_all()
                    raise ListenError(self.config.admin.listen, exc) from None
        # Access lines and tunnel ends are written once per loop iteration from now on,
        # not one write each; `_stopped` ends this.
        self.log.batch(self.loop)

    def listener_fds(self) -> dict[str, int]:
        """The descriptor of each listener that has exactly one socket, by its key
        ("host port tls"): what a successor inherits in a binary upgrade."""
        return self.listeners.fds()

    def bound_addresses(self) -> list[str]:
        return self.listeners.bound_addresses()

    # == phases ============================================================================
    @property
    def draining(self) -> bool:
        """Whether requests are now answered 503 shutting_down (the client core asks):
        from the drain on."""
        return self.phase is not GatewayPhase.RUNNING

    def _move(self, new: GatewayPhase, **fields: Any) -> None:
        if new not in GATEWAY_MOVES[self.phase]:
            raise BadTransitionError(f"gateway {self.phase.name} -> {new.name}")
        was, self.phase = self.phase, new
        self.log.event("phase", phase=new.value, was=was.value, **fields)

    async def drain(
        self,
        timeout_s: float | None = None,
        *,
        close_code: int | None = None,
        handed_over: bool = False,
    ) -> None:
        """Shut down in the fixed order: drain for `timeout_s` (default: the config's
        `drain_timeout_s`), closing the tunnels at a pace with `close_code` (default:
        `drain_close_code`) after the grace, then stop. See the module docstring.
        `handed_over`: a successor accepts on the same sockets (a binary upgrade), so
        stop listening at once, skip the grace, and close the tunnels with 1012."""
        server = self.config.server
        timeout = server.drain_timeout_s if timeout_s is None else timeout_s
        code = server.drain_close_code if close_code is None else close_code
        grace, window = drain_window(server.drain_grace_s, server.drain_window_s, timeout)
        if handed_over:
            self.listeners.close_all()  # the successor's copies of the sockets stay open
            grace, window = 0.0, min(server.drain_window_s, timeout)
            code = CloseCode.SERVICE_RESTART
        start = self.loop.time()
        deadline = start + timeout
        self.begin_drain(timeout, grace_s=grace, window_s=window, close_code=code)
        if grace > 0:
            await asyncio.sleep(grace)
        self.drains.close_tunnels_paced(code, window, deadline, rate_per_s=server.drain_rate_per_s)
        await self.wait_drained(max(0.0, deadline - self.loop.time()))
        await self.stop()

    def begin_drain(self, timeout_s: float, **fields: Any) -> None:
        """RUNNING -> DRAINING: turn away queued handshakes and close idle connections.

        The listeners stay open, so that a client that connects meanwhile gets 503
        shutting_down with a Retry-After (from the client core) rather than a refused
        connection. Next: `drains.close_tunnels_paced` after the grace, `wait_drained`, then
        `stop`. `fields` go into the "draining" line."""
        self._move(GatewayPhase.DRAINING)
        self.log.event(
            "draining",
            connections=len(self.connections),
            tunnels=sum(1 for c in self.connections if c.tunnel_backend is not None),
            queued=sum(len(pool.queue) for pool in self.pools.values()),
            timeout_s=timeout_s,
            **fields,
        )
        if self.monitor is not None:
            self.monitor.publish()  # /readyz says no now, not at the next tick
        for pool in self.pools.values():
            pool.turn_away_waiters()
        for conn in list(self.connections):
            if conn.idle:
                conn.close_tunnel(CLOSE_GOING_AWAY, "", reason_code="shutdown")

    async def wait_drained(self, timeout_s: float) -> bool:
        """Wait until the last connection has left, or `timeout_s`; True if all left.
        Woken by `connection_closed`, not by polling: a drain ends as soon as it can."""
        deadline = self.loop.time() + timeout_s
        while self.connections:
            # Only ever cleared while connections remain: the next to empty the set
            # sets it again, so no wakeup is lost.
            self._emptied.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._emptied.wait()
            except TimeoutError:
                return not self.connections
        return True

    async def stop(self) -> None:
        """DRAINING -> STOPPING: stop listening, close what is left (tunnels with close
        code 1001), cancel and await the connect tasks, abort the connections that have
        not gone after CLOSE_GRACE_S, close the pools; then STOPPED."""
        self._move(GatewayPhase.STOPPING, connections=len(self.connections), tasks=len(self.tasks))
        self.listeners.close_all()
        for timer in self._arrivals.values():
            timer.cancel()
        self._arrivals.clear()
        self.drains.cancel_all()
        for conn in list(self.connections):
            conn.close_tunnel(CLOSE_GOING_AWAY, "server shutting down", reason_code="shutdown")
        # Cancelled before any await: a connect that completes now would find its client
        # core closed.
        while self.tasks:
            tasks = list(self.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.upkeep.stop()
        if not await self.wait_drained(CLOSE_GRACE_S):
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
        for pool in [*self.pools.values(), *self.retired]:
            await pool.close()
        await self.listeners.wait_closed()
        self._stopped()
        if self.monitor is not None:
            self.monitor.stop()
        if self.admin is not None:
            await self.admin.close()

    def _stopped(self) -> None:
        """STOPPING -> STOPPED: nothing of the gateway is left on the loop."""
        self._move(GatewayPhase.STOPPED)
        self.log.unbatch()
        self.log.event("stopped")

    # == reload ===========================================================================
    async def reload(self, new: Config) -> bool:
        """Apply `new` without closing a tunnel whose backend stays (see reload.py);
        False, with a `reload_failed` line, when it cannot be applied, and once the
        gateway no longer runs."""
        if self.phase is not GatewayPhase.RUNNING:
            self.log.event("reload_failed", error=f"the gateway is {self.phase.value}")
            return False
        return await reload(self, new)

    # == the connections' and tasks' bookkeeping (called by the adapter) ==================
    def connection_opened(self, conn: ClientConnection) -> None:
        """A client connected. One that arrives during the drain has ARRIVAL_GRACE_S to
        send its request (answered 503 shutting_down) before it is closed."""
        self.connections.add(conn)
        if self.phase is GatewayPhase.DRAINING:
            self._arrivals[conn] = self.loop.call_later(
                ARRIVAL_GRACE_S, self._arrival_grace_over, conn
            )

    def connection_closed(self, conn: ClientConnection) -> None:
        """A client connection is gone; the last one to go ends a drain."""
        self.connections.discard(conn)
        self.drains.forget(conn)
        timer = self._arrivals.pop(conn, None)
        if timer is not None:
            timer.cancel()
        if not self.connections and self.phase is not GatewayPhase.RUNNING:
            self._emptied.set()

    def _arrival_grace_over(self, conn: ClientConnection) -> None:
        del self._arrivals[conn]
        if conn in self.connections and conn.idle:
            conn.close_tunnel(CLOSE_GOING_AWAY, "", reason_code="shutdown")

    # == backends drained through the admin API =============================================
    def drain_backend(self, name: str, drained: bool, over_s: float) -> int:
        """Take the backend called `name` out of service, its tunnels closed with 1012
        over `over_s`, or put it back (see `Drains.drain_backend`)."""
        return self.drains.drain_backend(name, drained, over_s)

    def create_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task of this gateway (an upstream connect), tracked until it is done:
        STOPPING cancels and awaits those still running."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
