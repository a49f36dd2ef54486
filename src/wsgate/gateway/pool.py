"""A pool at runtime: the asyncio adapter around its admission controller, its
connections to the backends (new, idle for reuse) and the active health checks.

Every decision (slots, the wait queue, rejections, health, limits) comes from
`wsgate.policy.admission.AdmissionController`, which is pure; `Pool` gives it the time,
delivers its answers to the waiters and keeps the timers it asks for.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, cast

from wsgate.config.model import Address, BackendConfig, PoolConfig
from wsgate.errors import ConnectError as ConnectError  # re-exported
from wsgate.gateway.checks import CheckedBackend, HealthChecks
from wsgate.gateway.dial import FD_LOG_INTERVAL_S, dial, open_files_limit
from wsgate.gateway.pool_health import apply_check, log_ejections
from wsgate.gateway.pool_metrics import AdmissionMeter
from wsgate.gateway.pool_reload import reconfigure
from wsgate.gateway.pool_settings import (
    admission_settings,
    health_settings,
    retry_budget,
)
from wsgate.gateway.spares import Spares
from wsgate.gateway.tls import client_context
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.log import JsonLog, RateLimitedEvent
from wsgate.policy.admission import (
    QUEUED,
    AdmissionController,
    Applicant,
    BackendState,
    Queued,
    Rejected,
)
from wsgate.policy.health import BackendHealth, HealthSettings
from wsgate.policy.queue import WaitQueue

if TYPE_CHECKING:
    from wsgate.observe.metrics import Metrics

IDLE_UPSTREAM_TIMEOUT_S = 60.0


class Waiter(Applicant, Protocol):
    """A client connection waiting for a handshake slot: the pool delivers the
    controller's answer to it."""

    def admitted(self, backend: Backend) -> None: ...
    def rejected(self, cause: str, detail: str, retry_after_s: int) -> None: ...
    def hash_key(self) -> bytes | None: ...
    def excluded(self) -> frozenset[Backend]: ...
    def __hash__(self) -> int: ...


class Backend(BackendState):
    """A backend's admission state (`BackendState`) plus its address, its pool and its
    connections: `open` all of them, `idle` the ones kept for reuse."""

    health: BackendHealth

    def __init__(
        self, config: BackendConfig, pool: Pool, health: HealthSettings, now: float
    ) -> None:
        super().__init__(
            str(config.address),
            config.weight,
            health,
            pool.config.max_handshakes_per_backend,
            now,
        )
        self.health = BackendHealth(health, now)
        self.address: Address = config.address
        self.pool = pool
        self.idle: list[UpstreamConnection] = []
        self.open: set[UpstreamConnection] = set()

    def available_now(self) -> bool:
        """Takes handshakes now: healthy, not ejected, not drained."""
        return self.health.available(self.pool.loop.time())

    def forget(self, conn: UpstreamConnection) -> None:
        self.open.discard(conn)
        idle = self.idle
        if idle and conn in idle:  # not a ValueError caught per connection: it is rare
            idle.remove(conn)

    def __repr__(self) -> str:
        return f"Backend({self.name})"


Decisions = Sequence[tuple[Waiter, Backend | Rejected]]


class Pool:
    """The adapter around a pool's `AdmissionController` (`admission`): it feeds the
    controller `loop.time()`, delivers its decisions to the waiters, keeps one timer at
    its `next_deadline()` and one per ejection, and holds the I/O: connections to the
    backends and the active health checks."""

    def __init__(
        self, config: PoolConfig, high_water: int, log: JsonLog, metrics: Metrics | None = None
    ) -> None:
        self.config = config
        self.log = log
        self.metrics = metrics
        self.meter = AdmissionMeter(metrics, config.name) if metrics is not None else None
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        health = health_settings(config)
        self.backends = [Backend(b, self, health, now) for b in config.backends]
        self.rng = random.Random()
        self.admission: AdmissionController[Backend, Waiter] = AdmissionController(
            admission_settings(config), self.backends, self.rng
        )
        if metrics is not None:
            self.admission.budget = retry_budget(config, metrics)
        self.budget = self.admission.budget
        # wss:// backends: this context (ConfigError from here for a CA file that does
        # not load); None for plain TCP.
        self.tls = client_context(config)
        self._high_water = high_water
        self._expiry: asyncio.TimerHandle | None = None
        self.checks = HealthChecks(self, self.loop)
        self._fd_log = RateLimitedEvent(
            log, "out_of_file_descriptors", FD_LOG_INTERVAL_S, self.loop
        )
        self.spares: Spares[Backend] = Spares(self.loop, self.connect, self._keep_spare)

    @property
    def queue(self) -> WaitQueue[Waiter]:
        """The handshakes waiting for a slot (`len` is how many)."""
        return self.admission.queue

    # -- admission: the controller decides, the pool delivers -------------------------------
    def pick_for_request(
        self, now: float, exclude: frozenset[Backend], key: bytes | None
    ) -> Backend | None:
        """A backend for a plain HTTP request: no handshake slot, any healthy backend."""
        return self.admission.pick_for_request(now, exclude, key)

    def retry_after(self) -> int:
        return self.admission.retry_after()

    def admit(
        self, waiter: Waiter, now: float, *, front: bool = False
    ) -> Backend | Rejected | Queued:
        """A handshake asks for a slot: a backend now, a place in line, or a rejection."""
        answer = self.admission.admit(waiter, now, front=front)
        if answer is QUEUED:
            if self._expiry is None:
                self._arm_expiry()
            self._top_up_spares()
        if self.meter is not None:
            self.meter.answered(waiter, answer, now)
        return answer

    def cancel(self, waiter: Waiter) -> None:
        self.admission.cancel(waiter)
        if self.meter is not None:
            self.meter.cancelled(waiter)

    def turn_away_waiters(self) -> int:
        """The gateway starts to drain: every queued handshake gets 503 shutting_down with
        a Retry-After now, rather than a bare close when the drain ends, and none is queued
        from now on (`admit` answers shutting_down where it would queue). Handshakes that
        hold a slot go on. Returns how many were turned away."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        decisions = self.admission.turn_away_all(self.loop.time())
        self._deliver(decisions)
        return len(decisions)

    def handshake_done(
        self, backend: Backend, rtt_s: float, inflight_at_start: int, outcome: str
    ) -> None:
        """Release a slot; `outcome` is an `Outcome` (see `AdmissionController.on_done`)."""
        now = self.loop.time()
        if self.metrics is not None:
            self.metrics.handshake_done(self.config.name, backend.name, outcome, rtt_s)
        decisions = self.admission.on_done(backend, rtt_s, inflight_at_start, outcome, now)
        if self.admission.ejected:
            self._log_ejections(now)
        if decisions:
            self._deliver(decisions)

    def note_failure(self, backend: Backend) -> None:
        now = self.loop.time()
        if self.admission.on_failure(backend, now):
            self._log_ejections(now)

    def note_success(self, backend: Backend) -> None:
        self.admission.on_success(backend, self.loop.time())

    def tunnel_opened(self, backend: Backend) -> None:
        self.admission.tunnel_opened(backend)
        if self.metrics is not None:
            self.metrics.tunnel_opened(self.config.name, backend.name)

    def tunnel_closed(self, backend: Backend) -> None:
        decisions = self.admission.tunnel_closed(backend, self.loop.time())
        if decisions:
            self._deliver(decisions)

    def _deliver(self, decisions: Decisions, *, timeout: str = "shed") -> None:
        """Give each waiter its answer. `timeout`: what a queue timeout is here (the
        metrics' decision): `shed` when predicted, `queue_timeout` from the timer."""
        if self.meter is not None:
            self.meter.delivered(decisions, timeout, self.loop.time())
        for waiter, answer in decisions:
            if isinstance(answer, Rejected):
                waiter.rejected(answer.cause, answer.detail, answer.retry_after_s)
            else:
                waiter.admitted(answer)
        self._top_up_spares()

    def _top_up_spares(self) -> None:
        """`preconnect`: while handshakes wait, a connection ready at each backend for
        the next one given a slot; none once nobody waits (see spares.py)."""
        if not len(self.admission.queue):
            self.spares.drop_unused()
        elif self.config.preconnect:
            self.spares.top_up(self.backends)

    def _keep_spare(self, conn: UpstreamConnection) -> None:
        if conn.backend not in self.backends:  # removed by a reload while it connected
            conn.close()
            return
        self.release(conn)
        self._top_up_spares()  # closed at once if the queue emptied while it connected

    def set_drained(self, backend: Backend, drained: bool) -> bool:
        """Take `backend` out of service (no new handshakes or requests; what it holds
        goes on) or put it back; True when that changed anything. The gateway closes its
        tunnels, paced (`Gateway.drain_backend`)."""
        if backend.health.drained == drained:
            return False
        backend.health.drained = drained
        if not drained:
            self.dispatch()  # its slots are to be had again
        return True

    def dispatch(self) -> None:
        """Give out the slots to be had now (a backend back, new limits)."""
        self._deliver(self.admission.dispatch(self.loop.time()))

    def _log_ejections(self, now: float) -> None:
        log_ejections(self, now)

    def _arm_expiry(self) -> None:
        deadline = self.admission.next_deadline()
        if deadline is not None:
            self._expiry = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        self._deliver(self.admission.expire(self.loop.time()), timeout="queue_timeout")
        if self._expiry is None:
            self._arm_expiry()

    # -- connections ------------------------------------------------------------------------
    def take_idle(self, backend: Backend) -> UpstreamConnection | None:
        while backend.idle:
            conn = backend.idle.pop()
            if not conn.closed:
                self.spares.taken(conn)
                return conn
        return None

    async def connect(self, backend: Backend) -> UpstreamConnection:
        """A new connection to `backend`, or ConnectError with the cause."""
        address = backend.address

        def out_of_descriptors(name: str) -> None:
            self._fd_log.emit(
                pool=self.config.name,
                backend=backend.name,
                errno=name,
                open_files_limit=open_files_limit(),
            )

        conn = await dial(
            lambda: UpstreamConnection(backend),
            address,
            loop=self.loop,
            timeout_s=self.config.connect_timeout_s,
            tls=self.tls,
            server_hostname=self.config.tls_server_name or address.host,
            on_out_of_descriptors=out_of_descriptors,
        )
        assert conn.transport is not None
        conn.transport.set_write_buffer_limits(high=self._high_water, low=self._high_water // 4)
        backend.open.add(conn)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection after a complete exchange; keep it if there is room."""
        conn.detach()
        backend = cast(Backend, conn.backend)  # `connect` made it for one of ours
        if conn.closed or len(backend.idle) >= self.config.max_idle_per_backend:
            conn.close()
            return
        backend.idle.append(conn)
        conn.start_idle_timer(self.loop, IDLE_UPSTREAM_TIMEOUT_S)

    # -- active health checks ------------------------------------------------------------------
    def start_checks(self) -> None:
        self.checks.start(self.backends)

    def stop_checks(self, backends: Sequence[Backend] | None = None) -> None:
        self.checks.stop(backends)

    def on_check(self, backend: CheckedBackend, ok: bool, detail: str) -> None:
        """An active check's verdict (checks.py), carried out in pool_health.py."""
        apply_check(self, cast(Backend, backend), ok, detail)  # checks run for our backends

    # -- reload ------------------------------------------------------------------------------
    def reconfigure(self, config: PoolConfig, tls: ssl.SSLContext | None) -> list[Backend]:
        """A reload: the pool's new settings and backends (pool_reload.py). Returns the
        backends that are gone: their tunnels are the gateway's to close."""
        return reconfigure(self, config, tls)

    def new_backend(self, config: BackendConfig, health: HealthSettings, now: float) -> Backend:
        return Backend(config, self, health, now)

    def queue_timeout_changed(self) -> None:
        """The queue's next timeout moved (a reload): its timer too."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
            self._arm_expiry()

    async def close(self) -> None:
        await self.checks.close()
        await self.spares.close()
        if self._expiry is not None:
            self._expiry.cancel()
        self._fd_log.close()
        for backend in self.backends:
            for conn in list(backend.open):
                conn.close()
