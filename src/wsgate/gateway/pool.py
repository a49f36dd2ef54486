"""A pool at runtime: its backends' health, load and limits, the handshake wait queue,
the balancer, connections to reuse, and the active health checks.

The decisions come from `wsgate.policy` (pure); this module holds the state they
decide on and the asyncio timers and tasks around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import socket
from collections.abc import Callable
from typing import Protocol, cast

from wsgate.config.model import Address, BackendConfig, PoolConfig
from wsgate.errors import ConnectError as ConnectError  # re-exported
from wsgate.gateway.healthcheck import run_check
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.log import JsonLog, RateLimitedEvent
from wsgate.policy.admission import QUEUED, Queued, Rejected
from wsgate.policy.balancers import make_balancer
from wsgate.policy.buckets import jittered_retry_after
from wsgate.policy.drain import DrainRate, beyond_deadline, queue_retry_after_s
from wsgate.policy.health import BackendHealth, HealthSettings
from wsgate.policy.limits import AdaptiveLimit, FixedLimit
from wsgate.policy.queue import WaitQueue
from wsgate.policy.retry import RetryBudget

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


class Waiter(Protocol):
    """A client connection waiting for a handshake slot."""

    def admitted(self, backend: Backend) -> None: ...
    def rejected(self, cause: str, detail: str, retry_after_s: int) -> None: ...
    def hash_key(self) -> bytes | None: ...
    def excluded(self) -> frozenset[Backend]: ...
    def __hash__(self) -> int: ...


class Backend:
    def __init__(self, config: BackendConfig, pool: Pool, now: float) -> None:
        pc = pool.config
        self.address: Address = config.address
        self.name = str(config.address)
        self.weight = config.weight
        self.pool = pool
        self.health = BackendHealth(
            HealthSettings(
                rise=pc.health.rise,
                fall=pc.health.fall,
                eject_after=pc.eject_after_failures,
                eject_base_s=pc.eject_base_s,
                eject_max_s=pc.eject_max_s,
                slow_start_s=pc.slow_start_s,
            ),
            now,
        )
        self.limiter: AdaptiveLimit | FixedLimit = (
            FixedLimit(pc.max_handshakes_per_backend)
            if pc.max_handshakes_per_backend
            else AdaptiveLimit()
        )
        self.inflight = 0  # handshakes holding a slot
        self.connections = 0  # established tunnels
        self.idle: list[UpstreamConnection] = []
        self.open: set[UpstreamConnection] = set()

    @property
    def load(self) -> int:
        return self.inflight + self.connections

    def handshake_capacity(self, now: float) -> int:
        return max(1, int(self.limiter.value * self.health.share(now)))

    def forget(self, conn: UpstreamConnection) -> None:
        self.open.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    def __repr__(self) -> str:
        return f"Backend({self.name})"


# Turning a waiter away on a prediction needs a steady rate: in the first seconds of a storm
# the gateway is busy accepting it and the adaptive limit is still settling, and the S1
# overload benchmark showed a 1 s measurement underrating the pool by a quarter (961 of the
# 1,260 handshakes it could serve in 30 s were kept). Five seconds of saturation (one time
# constant of DrainRate) is still far sooner than a 30 s timeout.
SHED_AFTER_S = 5.0


class Pool:
    def __init__(self, config: PoolConfig, high_water: int, log: JsonLog) -> None:
        self.config = config
        self.log = log
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        self.backends = [Backend(b, self, now) for b in config.backends]
        self.balancer = make_balancer(config.balance, self.backends)
        self.queue: WaitQueue[Waiter] = WaitQueue(config.queue_size, config.queue_timeout_s)
        self.budget = RetryBudget(config.retry_budget_ratio, config.retry_budget_min_per_s)
        self.drain = DrainRate()
        self.inflight = 0
        self.rng = random.Random()
        self._high_water = high_water
        self._expiry: asyncio.TimerHandle | None = None
        self._checks: list[asyncio.Task[None]] = []
        self.shutting_down = False  # the gateway drains: nobody joins the queue any more
        self._fd_log = RateLimitedEvent(
            log, "out_of_file_descriptors", FD_LOG_INTERVAL_S, self.loop
        )

    # -- choosing a backend ---------------------------------------------------------------
    def _eligible(self, now: float, exclude: frozenset[Backend]) -> list[Backend]:
        return [b for b in self.backends if b not in exclude and b.health.available(now)]

    def _pick(self, candidates: list[Backend], now: float, key: bytes | None) -> Backend | None:
        if not candidates:
            return None
        shares = [b.health.share(now) for b in candidates]
        chosen = self.balancer.pick(candidates, shares, key)
        return chosen if isinstance(chosen, Backend) else None

    def _has_room(self, backend: Backend, now: float) -> bool:
        limit = self.config.max_connections_per_backend
        if limit and backend.load >= limit:
            return False
        return backend.inflight < backend.handshake_capacity(now)

    def pick_for_request(
        self, now: float, exclude: frozenset[Backend], key: bytes | None
    ) -> Backend | None:
        """A backend for a plain HTTP request: no handshake slot, any healthy backend."""
        return self._pick(self._eligible(now, exclude), now, key)

    def retry_after(self) -> int:
        return jittered_retry_after(self.config.retry_after_s, self.rng)

    def queue_retry_after(self, now: float) -> int:
        """For a client the queue turns away: come back when the line should be gone."""
        wait_s = queue_retry_after_s(
            len(self.queue), self.drain.rate(now), self.config.retry_after_s
        )
        return jittered_retry_after(wait_s, self.rng)

    def admit(
        self, waiter: Waiter, now: float, *, front: bool = False
    ) -> Backend | Rejected | Queued:
        """A handshake asks for a slot: a backend now, a place in line, or a rejection."""
        eligible = self._eligible(now, waiter.excluded())
        if not eligible:
            return Rejected(
                "no_healthy_upstream",
                f"Pool {self.config.name}: no backend is up.",
                self.retry_after(),
            )
        limit = self.config.max_connections_per_backend
        if limit and all(b.load >= limit for b in eligible):
            return Rejected(
                "at_capacity",
                f"Every backend of pool {self.config.name} holds {limit} connections.",
                self.retry_after(),
            )
        if front or not len(self.queue):
            backend = self._try_slot(eligible, now, waiter.hash_key())
            if backend is not None:
                return backend
        if self.shutting_down:
            return self._shutting_down()
        if not len(self.queue):
            self.drain = DrainRate()  # saturated from now on: measure capacity afresh
        elif not front:
            rate = self.drain.rate(now, SHED_AFTER_S)
            if rate and beyond_deadline(len(self.queue) + 1, 0.0, self.queue.timeout_s, rate):
                return self._predicted_timeout(now, rate)
        pushed = self.queue.push_front(waiter, now) if front else self.queue.push(waiter, now)
        if not pushed:
            return Rejected(
                "overloaded_queue_full",
                f"{len(self.queue)} handshakes already wait for pool {self.config.name}.",
                self.queue_retry_after(now),
            )
        self._arm_expiry()
        return QUEUED

    def _try_slot(self, eligible: list[Backend], now: float, key: bytes | None) -> Backend | None:
        if self.config.max_handshakes and self.inflight >= self.config.max_handshakes:
            return None
        if self.config.balance == "consistent_hash":
            # Stickiness first: the key's backend, if it has room; else wait for it.
            backend = self._pick(eligible, now, key)
            if backend is None or not self._has_room(backend, now):
                return None
        else:
            backend = self._pick([b for b in eligible if self._has_room(b, now)], now, key)
            if backend is None:
                return None
        backend.inflight += 1
        self.inflight += 1
        return backend

    def cancel(self, waiter: Waiter) -> None:
        self.queue.remove(waiter)

    def _shutting_down(self) -> Rejected:
        return Rejected(
            "shutting_down",
            f"The gateway is draining: pool {self.config.name} queues no more handshakes.",
            self.retry_after(),
        )

    def turn_away_waiters(self) -> int:
        """The gateway starts to drain: every queued handshake gets 503 shutting_down with
        a Retry-After now, rather than a bare close when the drain ends, and none is queued
        from now on (`admit` answers shutting_down where it would queue). Handshakes that
        hold a slot go on. Returns how many were turned away."""
        self.shutting_down = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        count = 0
        while (waiter := self.queue.pop()) is not None:
            rejection = self._shutting_down()
            waiter.rejected(rejection.cause, rejection.detail, rejection.retry_after_s)
            count += 1
        return count

    def dispatch(self) -> None:
        """Hand free slots to waiters, first come first served."""
        now = self.loop.time()
        while True:
            waiter = self.queue.peek()
            if waiter is None:
                return
            eligible = self._eligible(now, waiter.excluded())
            if not eligible:
                self.queue.pop()
                waiter.rejected(
                    "no_healthy_upstream",
                    f"Pool {self.config.name}: no backend is up.",
                    self.retry_after(),
                )
                continue
            backend = self._try_slot(eligible, now, waiter.hash_key())
            if backend is None:
                return
            self.queue.pop()
            waiter.admitted(backend)

    def _predicted_timeout(self, now: float, rate: float) -> Rejected:
        return Rejected(
            "overloaded_queue_timeout",
            f"{len(self.queue)} handshakes wait ahead in pool {self.config.name}'s queue, which "
            f"completes {rate:.1f}/s: about {len(self.queue) / rate:.0f} s, more "
            f"than its queue timeout of {self.config.queue_timeout_s:g} s.",
            self.queue_retry_after(now),
        )

    def _shed(self, now: float) -> None:
        """Turn away, newest first, the waiters that would time out before their turn."""
        rate = self.drain.rate(now, SHED_AFTER_S)
        if not rate:
            return  # no prediction yet: only the real timeout applies
        while (newest := self.queue.newest()) is not None:
            waiter, since = newest
            if not beyond_deadline(len(self.queue), now - since, self.queue.timeout_s, rate):
                return
            self.queue.pop_newest()
            rejection = self._predicted_timeout(now, rate)
            waiter.rejected(rejection.cause, rejection.detail, rejection.retry_after_s)

    def _arm_expiry(self) -> None:
        if self._expiry is not None:
            return
        deadline = self.queue.next_deadline()
        if deadline is not None:
            self._expiry = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = self.loop.time()
        for waiter in self.queue.expired(now):
            waiter.rejected(
                "overloaded_queue_timeout",
                f"Waited {self.config.queue_timeout_s:g} s in pool {self.config.name}'s queue.",
                self.queue_retry_after(now),
            )
        self._arm_expiry()

    # -- outcomes ---------------------------------------------------------------------------
    def handshake_done(
        self, backend: Backend, rtt_s: float, inflight_at_start: int, outcome: str
    ) -> None:
        """Release a slot. `outcome`: ok (any answer), failed (refused, closed, 5xx) or
        dropped (timed out), aborted (the client went away or the gateway shut down):
        failures feed passive ejection, latency the adaptive limit; aborts neither."""
        now = self.loop.time()
        backend.inflight -= 1
        self.inflight -= 1
        self.drain.on_done(now)
        if outcome == "ok":
            backend.limiter.on_sample(rtt_s, inflight_at_start, now)
            backend.health.on_success(now)
        elif outcome != "aborted":  # the client or the gateway gave up: says nothing of it
            if outcome == "dropped":
                backend.limiter.on_sample(rtt_s, inflight_at_start, now, dropped=True)
            self.note_failure(backend)
        self.dispatch()
        self._shed(now)

    def note_failure(self, backend: Backend) -> None:
        if backend.health.on_failure(self.loop.time()):
            self.log.event(
                "backend_ejected",
                pool=self.config.name,
                backend=backend.name,
                until_s=round(backend.health.ejected_until - self.loop.time(), 1),
            )
            self.loop.call_at(backend.health.ejected_until, self.dispatch)

    def note_success(self, backend: Backend) -> None:
        backend.health.on_success(self.loop.time())

    def tunnel_opened(self, backend: Backend) -> None:
        backend.connections += 1

    def tunnel_closed(self, backend: Backend) -> None:
        backend.connections -= 1
        if len(self.queue):
            self.dispatch()

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
        try:
            async with asyncio.timeout(timeout):
                _, conn = await self.loop.create_connection(factory, address.host, address.port)
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
            self._checks.append(self.loop.create_task(self._check_loop(backend)))

    async def _check_loop(self, backend: Backend) -> None:
        health = self.config.health
        # Spread the first checks so that all backends are not probed in the same instant.
        await asyncio.sleep(self.rng.uniform(0, min(1.0, health.interval_s)))
        while True:
            ok, detail = await run_check(health, backend.address, self.config.connect_timeout_s)
            if not ok and detail in FD_ERROR_TEXTS:
                # The gateway had no descriptor for the check: no verdict on the backend.
                await asyncio.sleep(health.interval_s)
                continue
            if backend.health.on_check(ok, self.loop.time()):
                self.log.event(
                    "backend_up" if backend.health.up else "backend_down",
                    pool=self.config.name,
                    backend=backend.name,
                    check=health.kind,
                    detail=detail,
                )
                if backend.health.up:
                    self.dispatch()
            await asyncio.sleep(health.interval_s)

    async def close(self) -> None:
        for task in self._checks:
            task.cancel()
        for task in self._checks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._expiry is not None:
            self._expiry.cancel()
        self._fd_log.close()
        for backend in self.backends:
            for conn in list(backend.open):
                conn.close()
