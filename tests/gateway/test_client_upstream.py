"""The client connection's way to a backend (client_upstream.py): the link opens an idle
or a new upstream connection through a real pool, reports it or its failure to the core's
upstream side, hands the commands that come back to its owner, cancels a connect the
client no longer waits for, and pauses the upstream while the client reads slowly.
Real listeners on 127.0.0.1 stand for the backends; the core's side is a recorder."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from tests.gateway.fakes import until
from tests.support.procs import free_port
from wsgate.config.model import Address, BackendConfig, HealthCheckConfig, PoolConfig
from wsgate.gateway.client import ClientConnection
from wsgate.gateway.client_upstream import UpstreamLink
from wsgate.gateway.commands import Command, OpenUpstream, ReleaseUpstream, SendToClient
from wsgate.gateway.pool import Backend, Pool
from wsgate.gateway.upstream_side import UpstreamSide
from wsgate.observe.log import JsonLog

HEAD_LIMIT = 16384


class Owner:
    """The client connection's part: runs commands, starts tasks, says if writes wait."""

    def __init__(self) -> None:
        self.write_paused = False
        self.ran: list[list[Command]] = []

    def run(self, commands: list[Command]) -> None:
        self.ran.append(commands)

    def create_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(coro)


class Side:
    """Records what the link reports; answers each report with one marker command."""

    def __init__(self) -> None:
        self.heard: list[tuple[Any, ...]] = []

    def _heard(self, *event: Any) -> list[Command]:
        self.heard.append(event)
        return [SendToClient(event[0].encode())]

    def upstream_ready(self, connect_ms: float | None, now: float) -> list[Command]:
        return self._heard("ready", connect_ms)

    def upstream_failed(self, cause: str, detail: str, now: float) -> list[Command]:
        return self._heard("failed", cause)

    def response_body(self, data: bytes) -> list[Command]:
        return self._heard("body", data)

    def upstream_lost(self, reason: str, now: float) -> list[Command]:
        return self._heard("lost", reason)


def run_link(
    body: Callable[[UpstreamLink, Owner, Side, Pool], Awaitable[None]],
    *,
    port: int | None = None,
    connect_timeout_s: float = 10.0,
) -> None:
    """`body(link, owner, side, pool)` with a pool of one backend: a real listener that
    holds what it accepts, or `port` (where the test keeps something else)."""

    async def main() -> None:
        held: list[asyncio.StreamWriter] = []

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        backend_port = port or int(server.sockets[0].getsockname()[1])
        config = PoolConfig(
            "app",
            (BackendConfig(Address("127.0.0.1", backend_port)),),
            health=HealthCheckConfig(kind="none"),
            connect_timeout_s=connect_timeout_s,
        )
        pool = Pool(config, 65536, JsonLog(io.StringIO()))
        owner, side = Owner(), Side()
        link = UpstreamLink(owner, asyncio.get_running_loop())
        link.side = cast(UpstreamSide, side)
        try:
            await body(link, owner, side, pool)
        finally:
            await pool.close()
            for writer in held:
                writer.close()
            server.close()

    asyncio.run(main())


def open_command(backend: Backend, *, fresh: bool) -> OpenUpstream:
    return OpenUpstream(backend, head_request=False, head_limit=HEAD_LIMIT, fresh=fresh)


def test_an_idle_connection_is_taken_and_ready_in_the_same_call() -> None:
    async def body(link: UpstreamLink, owner: Owner, side: Side, pool: Pool) -> None:
        backend = pool.backends[0]
        idle = await pool.connect(backend)
        pool.release(idle)
        assert backend.idle == [idle]

        link.open(open_command(backend, fresh=False))
        assert side.heard == [("ready", None)]  # no connect time: nothing was connected
        assert owner.ran == [[SendToClient(b"ready")]]
        assert link.upstream is idle and idle.sink is link and backend.idle == []

    run_link(body)


def test_a_new_connection_reports_its_connect_time() -> None:
    async def body(link: UpstreamLink, owner: Owner, side: Side, pool: Pool) -> None:
        backend = pool.backends[0]
        idle = await pool.connect(backend)
        pool.release(idle)

        link.open(open_command(backend, fresh=True))  # fresh: the idle one is not taken
        assert side.heard == []
        await until(lambda: bool(side.heard))
        (event, connect_ms), *_ = side.heard
        assert event == "ready" and isinstance(connect_ms, float) and connect_ms >= 0
        assert link.upstream is not None and link.upstream is not idle
        assert backend.idle == [idle]

    run_link(body)


def test_a_refused_connect_reports_its_cause() -> None:
    async def body(link: UpstreamLink, owner: Owner, side: Side, pool: Pool) -> None:
        link.open(open_command(pool.backends[0], fresh=False))
        await until(lambda: bool(side.heard))
        assert side.heard == [("failed", "upstream_connect_refused")]
        assert owner.ran == [[SendToClient(b"failed")]]
        assert link.upstream is None

    run_link(body, port=free_port())


def test_a_connect_the_client_left_is_cancelled_not_reported() -> None:
    # A listener whose backlog is full and that never accepts: the connect hangs until the
    # pool's connect timeout, which would report `upstream_timeout` if not cancelled.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))

        async def body(link: UpstreamLink, owner: Owner, side: Side, pool: Pool) -> None:
            before = asyncio.all_tasks()
            link.open(open_command(pool.backends[0], fresh=False))
            (connect,) = asyncio.all_tasks() - before
            await asyncio.sleep(0.05)
            link.client_lost()
            await asyncio.wait([connect], timeout=10.0)
            assert connect.cancelled()
            await asyncio.sleep(0.6)  # past the connect timeout
            assert side.heard == [] and owner.ran == []

        try:
            run_link(body, port=port, connect_timeout_s=0.3)
        finally:
            for filler in fillers:
                filler.close()


def test_the_upstream_is_not_read_while_the_client_reads_slowly() -> None:
    async def body(link: UpstreamLink, owner: Owner, side: Side, pool: Pool) -> None:
        backend = pool.backends[0]
        idle = await pool.connect(backend)
        pool.release(idle)
        owner.write_paused = True  # the client's writes wait already

        link.open(open_command(backend, fresh=False))
        transport = cast(Any, idle.transport)
        assert not transport.is_reading()
        link.reading(True)
        assert transport.is_reading()
        link.reading(False)
        assert not transport.is_reading()

    run_link(body)


def test_events_go_to_the_side_and_their_commands_to_the_owner() -> None:
    async def body(link: UpstreamLink, owner: Owner, side: Side, pool: Pool) -> None:
        backend = pool.backends[0]
        link.open(open_command(backend, fresh=False))
        await until(lambda: link.upstream is not None)

        link.on_response_body(b"part")
        link.on_upstream_lost(ConnectionResetError("reset by peer"))
        assert side.heard[1:] == [("body", b"part"), ("lost", "reset by peer")]
        assert owner.ran[1:] == [[SendToClient(b"body")], [SendToClient(b"lost")]]
        assert link.upstream is None  # a lost connection is not released later

    run_link(body)


def test_a_released_connection_goes_back_to_its_pool_or_is_closed() -> None:
    async def body(link: UpstreamLink, owner: Owner, side: Side, pool: Pool) -> None:
        backend = pool.backends[0]
        link.open(open_command(backend, fresh=False))
        await until(lambda: link.upstream is not None)
        first = link.upstream
        link.release(ReleaseUpstream(reuse=True))
        assert link.upstream is None and backend.idle == [first]

        link.open(open_command(backend, fresh=False))  # takes that one again
        assert link.upstream is first
        link.release(ReleaseUpstream(abort=True))
        assert first is not None and first.closed and backend.idle == []
        link.release(ReleaseUpstream())  # nothing held: nothing happens

    run_link(body)


class Runtime:
    """The little of the running gateway a client connection needs before any client."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def create_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self.loop.create_task(coro)


def test_a_client_that_reads_slowly_keeps_the_upstream_attached_later_paused() -> None:
    # The client's writes paused before its upstream came (a pipelined request behind a
    # slow reader): the connection remembers it, and the link pauses the upstream at once.
    async def body(_: UpstreamLink, __: Owner, side: Side, pool: Pool) -> None:
        backend = pool.backends[0]
        idle = await pool.connect(backend)
        pool.release(idle)
        conn = ClientConnection(cast(Any, Runtime(asyncio.get_running_loop())))
        conn.pause_writing()
        assert conn.write_paused
        link = UpstreamLink(conn, asyncio.get_running_loop())
        link.side = cast(UpstreamSide, side)

        link.open(open_command(backend, fresh=False))
        transport = cast(Any, idle.transport)
        assert link.upstream is idle and not transport.is_reading()
        conn.resume_writing()
        assert not conn.write_paused

    run_link(body)
