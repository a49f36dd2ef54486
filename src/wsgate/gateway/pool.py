"""A pool at runtime: the asyncio adapter around its admission controller, its
connections to the backends (new, idle for reuse) and the active health checks.

Every decision (slots, the wait queue, rejections, health, limits) comes from
`wsgate.policy.admission.AdmissionController`, which is pure; `Pool` gives it the time,
delivers its answers to the waiters and keeps the timers it asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from wsgate.config.model import Address, BackendConfig, PoolConfig
from wsgate.errors import ConnectError as ConnectError  # re-exported
from wsgate.gateway.healthcheck import run_check
from wsgate.gateway.tls import client_context
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.log import JsonLog, RateLimitedEvent
from wsgate.policy.admission import (
    QUEUED,
    AdmissionController,
    AdmissionSettings,
    Applicant,
    BackendState,
    Queued,
    Rejected,
)
from wsgate.policy.health import BackendHealth, HealthSettings
from wsgate.policy.limits import AdaptiveLimit, FixedLimit
from wsgate.policy.queue import WaitQueue
from wsgate.policy.retry import RetryBudget

if TYPE_CHECKING:
    from wsgate.observe.metrics import Metrics

IDLE_UPSTREAM_TIMEOUT_S = 60.0
# EMFILE (this process) and ENFILE (the whole system): out of file descriptors.
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
FD_ERROR_TEXTS = frozenset(os.strerror(code) for code in OUT_OF_DESCRIPTORS)
FD_LOG_INTERVAL_S = 5.0  # at most one out_of_file_descriptors line per pool this often


def open_files_limit() -> int | None:
    """The soft RLIMIT_NOFILE: how many descriptors this process may hold."""
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Waiter(Applicant, Protocol):
    """A client connection waiting for a handshake slot: the pool delivers the
    controller's answer to it."""

    def admitted(self, backend: Backend) -> None: ...
    def rejected(self, cause: str, detail: str, retry_after_s: int) -> None: ...
    def hash_key(self) -> bytes | None: ...
    def excluded(self) -> frozenset[Backend]: ...
    def __hash__(self) -> int: ...


class AdminHealth(BackendHealth):
    """A backend's health plus the operator's word: a backend `drained` through the admin
    API takes no new handshakes or requests, whatever its checks say."""

    def __init__(self, settings: HealthSettings, now: float) -> None:
        super().__init__(settings, now)
        self.drained = False

    def available(self, now: float) -> bool:
        return not self.drained and super().available(now)


class MeteredBudget(RetryBudget):
    """The pool's retry budget, counting the retries it allows and refuses."""

    def __init__(self, ratio: float, min_per_s: float, metrics: Metrics, pool: str) -> None:
        super().__init__(ratio, min_per_s)
        self.metrics = metrics
        self.pool = pool

    def try_retry(self, now: float) -> bool:
        allowed = super().try_retry(now)
        self.metrics.retry(self.pool, allowed)
        return allowed


# A refusal's cause as an admission decision (see `Metrics.admission`); a queue timeout
# is `queue_timeout` from the queue's timer and `shed` when predicted.
REFUSALS = {
    "overloaded_queue_full": "queue_full",
    "overloaded_queue_timeout": "shed",
    "no_healthy_upstream": "no_healthy_upstream",
    "at_capacity": "at_capacity",
    "shutting_down": "shutting_down",
}


class Backend(BackendState):
    """A backend's admission state (`BackendState`) plus its address, its pool and its
    connections: `open` all of them, `idle` the ones kept for reuse."""

    health: AdminHealth

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
        self.health = AdminHealth(health, now)
        self.address: Address = config.address
        self.pool = pool
        self.idle: list[UpstreamConnection] = []
        self.open: set[UpstreamConnection] = set()

    def forget(self, conn: UpstreamConnection) -> None:
        self.open.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    def __repr__(self) -> str:
        return f"Backend({self.name})"


Decisions = Sequence[tuple[Waiter, Backend | Rejected]]


def admission_settings(config: PoolConfig) -> AdmissionSettings:
    return AdmissionSettings(
        pool=config.name,
        balance=config.balance,
        max_handshakes=config.max_handshakes,
        max_connections_per_backend=config.max_connections_per_backend,
        queue_size=config.queue_size,
        queue_timeout_s=config.queue_timeout_s,
        retry_after_s=config.retry_after_s,
        retry_budget_ratio=config.retry_budget_ratio,
        retry_budget_min_per_s=config.retry_budget_min_per_s,
    )


def health_settings(config: PoolConfig) -> HealthSettings:
    return HealthSettings(
        rise=config.health.rise,
        fall=config.health.fall,
        eject_after=config.eject_after_failures,
        eject_base_s=config.eject_base_s,
        eject_max_s=config.eject_max_s,
        slow_start_s=config.slow_start_s,
    )


def tls_failure(address: Address, exc: ssl.SSLError) -> str:
    """The words for a failed TLS handshake with a wss:// backend."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"Backend {address}: TLS certificate not verified ({exc.verify_message}): trust "
            "its CA with tls_ca_file, or name the certificate's host with tls_server_name."
        )
    return f"Backend {address}: TLS handshake failed ({exc.reason or exc})."


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
        # When each queued handshake joined the line (kept only for the metrics).
        self._queued_at: dict[Waiter, float] = {}
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        health = health_settings(config)
        self.backends = [Backend(b, self, health, now) for b in config.backends]
        self.rng = random.Random()
        self.admission: AdmissionController[Backend, Waiter] = AdmissionController(
            admission_settings(config), self.backends, self.rng
        )
        if metrics is not None:
            self.admission.budget = MeteredBudget(
                config.retry_budget_ratio, config.retry_budget_min_per_s, metrics, config.name
            )
        self.budget = self.admission.budget
        # wss:// backends: this context (ConfigError from here for a CA file that does
        # not load); None for plain TCP.
        self.tls = client_context(config)
        self._high_water = high_water
        self._expiry: asyncio.TimerHandle | None = None
        self._checks: dict[Backend, asyncio.Task[None]] = {}
        self._fd_log = RateLimitedEvent(
            log, "out_of_file_descriptors", FD_LOG_INTERVAL_S, self.loop
        )

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
        if answer is QUEUED and self._expiry is None:
            self._arm_expiry()
        metrics = self.metrics
        if metrics is not None:
            name = self.config.name
            if answer is QUEUED:
                self._queued_at[waiter] = now
                metrics.admission(name, "queued")
            elif isinstance(answer, Rejected):
                metrics.admission(name, REFUSALS.get(answer.cause, answer.cause))
            else:
                metrics.admission(name, "admitted")
        return answer

    def cancel(self, waiter: Waiter) -> None:
        self.admission.cancel(waiter)
        if self._queued_at:
            self._queued_at.pop(waiter, None)

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
        if self.metrics is not None:
            self._count(decisions, timeout)
        for waiter, answer in decisions:
            if isinstance(answer, Rejected):
                waiter.rejected(answer.cause, answer.detail, answer.retry_after_s)
            else:
                waiter.admitted(answer)

    def set_drained(self, backend: Backend, drained: bool) -> bool:
        """Take `backend` out of service (no new handshakes or requests; what it holds
        goes on) or put it back; True when that changed anything. The gateway closes its
        tunnels, paced (`Gateway.drain_backend`)."""
        if backend.health.drained == drained:
            return False
        backend.health.drained = drained
        if not drained:
            self._dispatch()  # its slots are to be had again
        return True

    def _count(self, decisions: Decisions, timeout: str) -> None:
        metrics = self.metrics
        assert metrics is not None
        now = self.loop.time()
        name = self.config.name
        for waiter, answer in decisions:
            since = self._queued_at.pop(waiter, None)
            if since is not None:
                metrics.queue_wait(name, now - since)
            if not isinstance(answer, Rejected):
                metrics.admission(name, "dequeued")
            elif answer.cause == "overloaded_queue_timeout":
                metrics.admission(name, timeout)
            else:
                metrics.admission(name, REFUSALS.get(answer.cause, answer.cause))

    def _dispatch(self) -> None:
        self._deliver(self.admission.dispatch(self.loop.time()))

    def _log_ejections(self, now: float) -> None:
        ejected = self.admission.ejected
        while ejected:
            backend = ejected.pop(0)
            until = backend.health.ejected_until
            if self.metrics is not None:
                self.metrics.ejection(self.config.name, backend.name)
            self.log.event(
                "backend_ejected",
                pool=self.config.name,
                backend=backend.name,
                until_s=round(until - now, 1),
            )
            self.loop.call_at(until, self._dispatch)  # slots may come back with it

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
                return conn
        return None

    async def connect(self, backend: Backend) -> UpstreamConnection:
        """A new connection to `backend`, or ConnectError with the cause."""
        address = backend.address
        factory: Callable[[], UpstreamConnection] = lambda: UpstreamConnection(backend)  # noqa: E731
        timeout = self.config.connect_timeout_s
        tls = self.tls
        try:
            async with asyncio.timeout(timeout):
                if tls is None:
                    _, conn = await self.loop.create_connection(factory, address.host, address.port)
                else:
                    _, conn = await self.loop.create_connection(
                        factory,
                        address.host,
                        address.port,
                        ssl=tls,
                        server_hostname=self.config.tls_server_name or address.host,
                    )
        except TimeoutError:
            raise ConnectError(
                "upstream_connect_timeout",
                f"Backend {address} did not accept within {timeout:g} s.",
            ) from None
        except ConnectionRefusedError:
            raise ConnectError(
                "upstream_connect_refused", f"Backend {address} refused the connection."
            ) from None
        except socket.gaierror as exc:
            raise ConnectError(
                "upstream_connect_failed",
                f"Backend {address}: the name does not resolve ({exc.strerror or exc}).",
            ) from None
        except ssl.SSLError as exc:
            raise ConnectError("upstream_connect_failed", tls_failure(address, exc)) from None
        except UnicodeError as exc:  # a name the IDNA codec refuses: an empty label, say
            raise ConnectError(
                "upstream_connect_failed",
                f"Backend {address}: the name is not a valid host name ({exc.__cause__ or exc}).",
            ) from None
        except OSError as exc:
            if exc.errno in OUT_OF_DESCRIPTORS:
                # The gateway's own condition, not the backend's: no ejection, no retry.
                self._fd_log.emit(
                    pool=self.config.name,
                    backend=backend.name,
                    errno=errno.errorcode[exc.errno],
                    open_files_limit=open_files_limit(),
                )
                raise ConnectError(
                    "out_of_file_descriptors",
                    f"No file descriptor left for a connection to backend {address} "
                    f"({exc.strerror or exc}).",
                ) from None
            raise ConnectError(
                "upstream_connect_failed", f"Backend {address}: {exc.strerror or exc}."
            ) from None
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
        if self.config.health.kind == "none":
            return
        for backend in self.backends:
            if backend not in self._checks:
                self._checks[backend] = self.loop.create_task(self._check_loop(backend))

    def stop_checks(self, backends: Sequence[Backend] | None = None) -> None:
        for backend in list(self._checks) if backends is None else backends:
            task = self._checks.pop(backend, None)
            if task is not None:
                task.cancel()

    # -- reload ------------------------------------------------------------------------------
    def reconfigure(self, config: PoolConfig, tls: ssl.SSLContext | None) -> list[Backend]:
        """A reload: the pool's new settings and backends. A backend whose address stays
        is the same object (its connections, tunnels, health, learned limit and admin
        drain go on) with the new weight and limit; new ones start as at start-up.
        Returns the backends that are gone: they take nothing new, their idle
        connections are closed, and their tunnels are the gateway's to close."""
        old = self.config
        now = self.loop.time()
        health = health_settings(config)
        kept = {b.address: b for b in self.backends}
        backends: list[Backend] = []
        for backend_config in config.backends:
            backend = kept.pop(backend_config.address, None)
            if backend is None:
                backend = Backend(backend_config, self, health, now)
            else:
                backend.weight = backend_config.weight
                backend.health.s = health
                if config.max_handshakes_per_backend != old.max_handshakes_per_backend:
                    backend.limiter = (
                        FixedLimit(config.max_handshakes_per_backend)
                        if config.max_handshakes_per_backend
                        else AdaptiveLimit()
                    )
            backends.append(backend)
        gone = list(kept.values())
        self.config = config
        self.tls = tls
        self.backends = backends
        self.admission.reconfigure(admission_settings(config), backends)
        if (config.retry_budget_ratio, config.retry_budget_min_per_s) != (
            old.retry_budget_ratio,
            old.retry_budget_min_per_s,
        ):
            self.admission.budget = (
                MeteredBudget(
                    config.retry_budget_ratio,
                    config.retry_budget_min_per_s,
                    self.metrics,
                    config.name,
                )
                if self.metrics is not None
                else RetryBudget(config.retry_budget_ratio, config.retry_budget_min_per_s)
            )
            self.budget = self.admission.budget
        for backend in gone:
            for conn in backend.idle:
                conn.close()
            backend.idle.clear()
        # Checks follow the new backends, and restart when their settings changed.
        self.stop_checks(gone if config.health == old.health else None)
        self.start_checks()
        if config.queue_timeout_s != old.queue_timeout_s and self._expiry is not None:
            self._expiry.cancel()  # the queue's next timeout moved
            self._expiry = None
            self._arm_expiry()
        self._dispatch()  # new backends or limits may take queued handshakes now
        return gone

    async def _check_loop(self, backend: Backend) -> None:
        health = self.config.health
        # Spread the first checks so that all backends are not probed in the same instant.
        await asyncio.sleep(self.rng.uniform(0, min(1.0, health.interval_s)))
        while True:
            ok, detail = await run_check(
                health,
                backend.address,
                self.config.connect_timeout_s,
                tls=self.tls,
                server_hostname=self.config.tls_server_name,
            )
            if not ok and detail in FD_ERROR_TEXTS:
                # The gateway had no descriptor for the check: no verdict on the backend.
                await asyncio.sleep(health.interval_s)
                continue
            if self.admission.on_check(backend, ok, self.loop.time()):
                self.log.event(
                    "backend_up" if backend.health.up else "backend_down",
                    pool=self.config.name,
                    backend=backend.name,
                    check=health.kind,
                    detail=detail,
                )
                if backend.health.up:
                    self._dispatch()
            await asyncio.sleep(health.interval_s)

    async def close(self) -> None:
        tasks = list(self._checks.values())
        self._checks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._expiry is not None:
            self._expiry.cancel()
        self._fd_log.close()
        for backend in self.backends:
            for conn in list(backend.open):
                conn.close()
