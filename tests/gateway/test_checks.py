"""A pool's active health checks (checks.py, `HealthChecks`) on a real loop against real
sockets on 127.0.0.1: a listener that takes the connection, a tiny HTTP server that
answers 503, and ports where nothing listens. The pool's side is a recording pool that
hears each verdict and, as the real pool does with fall = rise = 1, takes a backend down
on a failed check and up on a passed one. Intervals are short and the deadlines generous;
nothing is timed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tests.gateway.fakes import until
from tests.support.descriptors import no_descriptor_left
from tests.support.procs import free_port
from wsgate.config.model import Address, HealthCheckConfig, PoolConfig
from wsgate.gateway.checks import CheckedBackend, HealthChecks

QUICK = HealthCheckConfig(kind="tcp", interval_s=0.05, timeout_s=5.0)


@dataclass
class Health:
    up: bool = True


@dataclass(eq=False)
class Target:
    """A backend to check: its address and whether it is up."""

    address: Address
    health: Health = field(default_factory=Health)


class RecordingPool:
    """What the checks read of their pool (its config, read afresh for each probe) and
    the verdicts they report, in order."""

    def __init__(self, health: HealthCheckConfig) -> None:
        self.config = PoolConfig("app", (), health=health)
        self.tls = None
        self.rng = random.Random(1)
        self.verdicts: list[tuple[Target, bool, str]] = []

    def on_check(self, backend: CheckedBackend, ok: bool, detail: str) -> None:
        assert isinstance(backend, Target)
        backend.health.up = ok
        self.verdicts.append((backend, ok, detail))

    def of(self, target: Target) -> list[tuple[bool, str]]:
        return [(ok, detail) for b, ok, detail in self.verdicts if b is target]


def at(port: int) -> Target:
    return Target(Address("127.0.0.1", port))


@contextlib.asynccontextmanager
async def answering(response: bytes | None = None) -> AsyncIterator[int]:
    """A listener on a port the system picks: it takes each connection and, given a
    `response`, writes it once a request head has come; yields the port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            if response is not None:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(response)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def test_a_listening_backend_passes_and_a_refusing_one_fails() -> None:
    async def main() -> None:
        pool = RecordingPool(QUICK)
        checks = HealthChecks(pool, asyncio.get_running_loop())
        async with answering() as port:
            listening, refusing = at(port), at(free_port())
            checks.start([listening, refusing])
            try:
                await until(lambda: bool(pool.of(listening) and pool.of(refusing)))
            finally:
                await checks.close()
        assert pool.of(listening)[0] == (True, "connected")
        assert pool.of(refusing)[0] == (False, os.strerror(errno.ECONNREFUSED))
        assert not refusing.health.up and listening.health.up

    asyncio.run(main())


def test_kind_none_checks_nothing() -> None:
    async def main() -> None:
        pool = RecordingPool(HealthCheckConfig(kind="none", interval_s=0.05))
        checks = HealthChecks(pool, asyncio.get_running_loop())
        before = asyncio.all_tasks()
        checks.start([at(free_port())])
        assert asyncio.all_tasks() == before  # no task to check it
        await checks.close()

    asyncio.run(main())


def test_a_down_backend_is_checked_at_the_down_interval_until_it_is_back() -> None:
    # Every 600 s while up, every 0.05 s while down: a restarted backend is seen back
    # long before the up interval.
    async def main() -> None:
        health = HealthCheckConfig(kind="tcp", interval_s=600.0, down_interval_s=0.05)
        pool = RecordingPool(health)
        checks = HealthChecks(pool, asyncio.get_running_loop())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
            async with answering() as port:
                down, up = at(sock.getsockname()[1]), at(port)
                checks.start([down, up])
                try:
                    await until(lambda: len(pool.of(down)) >= 3 and len(pool.of(up)) >= 1)
                    # Up: checked once, its next check is 600 s away.
                    assert pool.of(up) == [(True, "connected")]
                    sock.listen()  # the restart
                    await until(lambda: down.health.up)
                finally:
                    await checks.close()
        assert pool.of(down)[-1] == (True, "connected")
        assert all(not ok for ok, _ in pool.of(down)[:-1])

    asyncio.run(main())


def test_stop_ends_the_checks_of_those_backends_only_and_close_all() -> None:
    async def main() -> None:
        pool = RecordingPool(QUICK)
        checks = HealthChecks(pool, asyncio.get_running_loop())
        before = asyncio.all_tasks()
        stopped, going_on = at(free_port()), at(free_port())
        checks.start([stopped, going_on])
        checks.start([stopped])  # already checked: not a second task
        assert len(asyncio.all_tasks() - before) == 2
        try:
            await until(lambda: bool(pool.of(stopped) and pool.of(going_on)))
            checks.stop([stopped])
            heard = len(pool.of(stopped))
            more = len(pool.of(going_on)) + 3
            await until(lambda: len(pool.of(going_on)) >= more)
            assert len(pool.of(stopped)) == heard
        finally:
            await checks.close()
        assert asyncio.all_tasks() == before  # close waited for the cancelled tasks

    asyncio.run(main())


def test_each_probe_reads_the_pools_config_afresh() -> None:
    # A reload replaces the pool's config; the next probe follows it.
    async def main() -> None:
        pool = RecordingPool(QUICK)
        checks = HealthChecks(pool, asyncio.get_running_loop())
        answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        async with answering(answer) as port:
            target = at(port)
            checks.start([target])
            try:
                await until(lambda: bool(pool.of(target)))
                assert pool.of(target)[0] == (True, "connected")
                pool.config = dataclasses.replace(
                    pool.config, health=dataclasses.replace(QUICK, kind="http")
                )
                await until(lambda: not target.health.up)
            finally:
                await checks.close()
        assert pool.of(target)[-1] == (False, "status 503, expected 200")

    asyncio.run(main())


def test_a_check_without_a_descriptor_gives_no_verdict() -> None:
    # The gateway had no descriptor for the probe: that says nothing of the backend, so
    # a refusing backend is not found down while the limit is low, and is once it is not.
    async def main() -> None:
        pool = RecordingPool(QUICK)
        checks = HealthChecks(pool, asyncio.get_running_loop())
        target = at(free_port())
        try:
            with no_descriptor_left():
                checks.start([target])
                await asyncio.sleep(0.5)  # about ten probes, each out of descriptors
                assert pool.verdicts == []
            await until(lambda: bool(pool.verdicts))
        finally:
            await checks.close()
        assert pool.of(target)[0] == (False, os.strerror(errno.ECONNREFUSED))

    asyncio.run(main())
