"""`preconnect`: while handshakes wait in the queue, the pool keeps a connection open at
each available backend, and the handshake given the next free slot takes it at once.
A real listener on 127.0.0.1 stands for the backend; the pool runs on a real loop. Also
the health checks' side of it: a backend found down loses its idle connections and is
checked at the down interval."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from tests.gateway.fakes import RecordingWaiter as Waiter
from tests.gateway.fakes import until
from tests.support.procs import free_port
from wsgate.config.model import Address, BackendConfig, HealthCheckConfig, PoolConfig
from wsgate.gateway.pool import Backend, Pool
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.log import JsonLog
from wsgate.policy.admission import QUEUED


class Listeners(list[asyncio.StreamWriter]):
    """The connections the backends' listeners took and still hold; `servers` the
    listeners themselves."""

    servers: list[asyncio.Server]


def run_with_backends(
    body: Callable[[Pool, Listeners], Awaitable[Any]],
    backends: int = 1,
    **values: Any,
) -> Any:
    """`body(pool, accepted)` with a pool in front of `backends` real listeners;
    `accepted` holds the connections they took and still hold. `port` in `values`: the
    one backend is that port instead."""

    async def main() -> Any:
        accepted = Listeners()

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)
            if not await reader.read(1):  # the gateway closed it: the writer goes
                accepted.remove(writer)
                writer.close()

        servers = [
            await asyncio.start_server(on_connection, "127.0.0.1", 0) for _ in range(backends)
        ]
        accepted.servers = servers
        ports = [server.sockets[0].getsockname()[1] for server in servers]
        if "port" in values:
            ports = [values.pop("port")]
        cfg = PoolConfig(
            "app",
            tuple(BackendConfig(Address("127.0.0.1", port)) for port in ports),
            max_handshakes_per_backend=1,
            balance="round_robin",
            **values,
        )
        pool = Pool(cfg, 65536, JsonLog(io.StringIO()))
        try:
            return await body(pool, accepted)
        finally:
            await pool.close()
            for writer in accepted:
                writer.close()
            for server in servers:
                server.close()

    return asyncio.run(main())


def test_a_queue_gets_a_spare_connection_and_the_next_slot_takes_it() -> None:
    async def body(pool: Pool, accepted: Listeners) -> None:
        heard: list[tuple[str, str]] = []
        backend = pool.backends[0]
        assert isinstance(pool.admit(Waiter("w0", heard), pool.loop.time()), Backend)
        assert backend.idle == []  # no queue: nothing opened ahead
        waiting = Waiter("w1", heard)
        taken: list[UpstreamConnection | None] = []
        waiting.on_admitted = lambda b: taken.append(pool.take_idle(b))
        assert pool.admit(waiting, pool.loop.time()) is QUEUED
        await until(lambda: len(backend.idle) == 1 and len(accepted) == 1)
        spare = backend.idle[0]

        pool.handshake_done(backend, 0.01, 1, "ok")  # w0's 101: its slot frees
        assert heard == [("w1", backend.name)]  # the pool answered w0 by admit's return
        assert taken == [spare]  # in the same call, no connect in between
        assert pool.spares.opened == 1
        # The queue is empty now: no new spare.
        await asyncio.sleep(0.2)
        assert backend.idle == [] and len(accepted) == 1

    run_with_backends(body, preconnect=True)


def test_without_preconnect_a_queue_opens_nothing_ahead() -> None:
    async def body(pool: Pool, accepted: Listeners) -> None:
        heard: list[tuple[str, str]] = []
        assert isinstance(pool.admit(Waiter("w0", heard), pool.loop.time()), Backend)
        assert pool.admit(Waiter("w1", heard), pool.loop.time()) is QUEUED
        await asyncio.sleep(0.3)
        assert pool.backends[0].idle == [] and accepted == []
        assert pool.spares.opened == 0

    run_with_backends(body)


def test_no_spare_for_a_drained_backend() -> None:
    async def body(pool: Pool, accepted: Listeners) -> None:
        heard: list[tuple[str, str]] = []
        working, drained = pool.backends
        pool.set_drained(drained, True)
        assert pool.admit(Waiter("w0", heard), pool.loop.time()) is working
        assert pool.admit(Waiter("w1", heard), pool.loop.time()) is QUEUED
        await until(lambda: len(working.idle) == 1)
        await asyncio.sleep(0.3)
        assert drained.idle == [] and len(accepted) == 1

    run_with_backends(body, 2, preconnect=True)


def test_a_spare_that_cannot_connect_is_dropped_and_tried_again_later() -> None:
    async def body(pool: Pool, accepted: Listeners) -> None:
        heard: list[tuple[str, str]] = []
        backend = pool.backends[0]
        assert isinstance(pool.admit(Waiter("w0", heard), pool.loop.time()), Backend)
        assert pool.admit(Waiter("w1", heard), pool.loop.time()) is QUEUED
        await until(lambda: not pool.spares.opening)
        assert backend.idle == [] and pool.spares.opened == 0
        assert pool.admit(Waiter("w2", heard), pool.loop.time()) is QUEUED
        assert pool.spares.opening  # a new queued handshake tries again

    run_with_backends(body, preconnect=True, port=free_port())


def test_spares_nobody_took_are_closed_when_the_queue_empties() -> None:
    # An idle connection that never sends a request holds a backend's graceful shutdown.
    async def body(pool: Pool, accepted: Listeners) -> None:
        heard: list[tuple[str, str]] = []
        first, second = pool.backends
        assert pool.admit(Waiter("w0", heard), pool.loop.time()) is first
        assert pool.admit(Waiter("w1", heard), pool.loop.time()) is second
        waiting = Waiter("w2", heard)
        taken: list[UpstreamConnection | None] = []
        waiting.on_admitted = lambda b: taken.append(pool.take_idle(b))
        assert pool.admit(waiting, pool.loop.time()) is QUEUED
        await until(lambda: len(first.idle) == 1 and len(second.idle) == 1)
        kept = second.idle[0]
        pool.handshake_done(first, 0.01, 1, "ok")  # w2 takes first's spare; nobody waits
        assert heard == [("w2", first.name)] and taken[0] is not None
        assert kept.closed and second.idle == [] and first.idle == []
        # The backend sees the unused spare go: only the taken one stays open there.
        await until(lambda: len(accepted) == 1)

    run_with_backends(body, 2, preconnect=True)


def test_a_backend_found_down_loses_its_idle_connections() -> None:
    async def body(pool: Pool, accepted: Listeners) -> None:
        heard: list[tuple[str, str]] = []
        backend = pool.backends[0]
        assert pool.admit(Waiter("w0", heard), pool.loop.time()) is backend
        assert pool.admit(Waiter("w1", heard), pool.loop.time()) is QUEUED
        await until(lambda: len(backend.idle) == 1 and len(accepted) == 1)
        accepted.servers[0].close()  # the backend stops listening; the spare stays open
        pool.start_checks()
        await until(lambda: not backend.health.up)
        assert backend.idle == []
        await until(lambda: not accepted)  # the backend sees it go: its shutdown can end

    run_with_backends(
        body, 1, preconnect=True, health=HealthCheckConfig(kind="tcp", interval_s=0.1, fall=1)
    )


def test_a_down_backend_is_checked_at_the_down_interval() -> None:
    # Checks every 30 s while up, every 0.1 s while down: a restarted backend is back in
    # well under the 30 s (HAProxy's downinter).
    async def main() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = sock.getsockname()[1]
        health = HealthCheckConfig(kind="tcp", interval_s=30.0, down_interval_s=0.1, fall=1)
        cfg = PoolConfig("app", (BackendConfig(Address("127.0.0.1", port)),), health=health)
        pool = Pool(cfg, 65536, JsonLog(io.StringIO()))
        backend = pool.backends[0]
        try:
            pool.start_checks()
            await until(lambda: not backend.health.up)
            sock.listen()  # the restart
            await until(lambda: backend.health.up)
        finally:
            await pool.close()
            sock.close()

    asyncio.run(main())
