"""The gateway's lifetime: the phase table, and drains run on a real loop (asyncio's and
uvloop's) with the gateway on 127.0.0.1 port 0 and a backend in the same loop.

Nothing here sleeps to synchronise: each step waits on an event or on the gateway's own
methods, under a deadline (DEADLINE_S) far shorter than the drain timeout (60 s), so a
drain that waited for its timeout fails the test instead of passing slowly."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from wsgate.config.model import (
    Address,
    BackendConfig,
    Config,
    HealthCheckConfig,
    PoolConfig,
    RouteConfig,
    ServerConfig,
)
from wsgate.gateway.pool import Backend, Pool
from wsgate.gateway.server import GATEWAY_MOVES, Gateway, GatewayPhase
from wsgate.gateway.states import BadTransitionError
from wsgate.observe.log import JsonLog

T = TypeVar("T")
DEADLINE_S = 10.0
DRAIN_TIMEOUT_S = 60.0
GET = b"GET /page HTTP/1.1\r\nHost: gw.test\r\n\r\n"
ORDER = [GatewayPhase.RUNNING, GatewayPhase.DRAINING, GatewayPhase.STOPPING, GatewayPhase.STOPPED]

Runner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a test's coroutine on asyncio's loop, then on uvloop's (the one `serve` uses)."""
    if request.param == "uvloop":
        return uvloop.run
    return asyncio.run


def config(backend_port: int) -> Config:
    pool = PoolConfig(
        "app",
        (BackendConfig(Address("127.0.0.1", backend_port)),),
        health=HealthCheckConfig(kind="none"),
    )
    server = ServerConfig(listen=(Address("127.0.0.1", 0),), drain_timeout_s=DRAIN_TIMEOUT_S)
    return Config(server=server, pools={"app": pool}, routes=(RouteConfig("app"),))


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def phase_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [r for r in records(stream) if r["event"] == "phase"]


async def within(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(DEADLINE_S):
        return await awaitable


class HttpBackend:
    """A backend on 127.0.0.1 that answers every request 200 with the body b"abcd".
    With `hold_head`, nothing is sent until `release` is set; with `hold_body`, the head
    and b"ab" go at once and b"cd" once `release` is set."""

    def __init__(self, *, hold_head: bool = False, hold_body: bool = False) -> None:
        self.hold_head = hold_head
        self.hold_body = hold_body
        self.got_request = asyncio.Event()
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.got_request.set()
                if self.hold_head:
                    await self.release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
                if self.hold_body:
                    await self.release.wait()
                writer.write(b"cd")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class Client:
    """One raw HTTP/1.1 client connection to the gateway."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def head(self) -> bytes:
        return await within(self.reader.readuntil(b"\r\n\r\n"))

    async def exactly(self, count: int) -> bytes:
        return await within(self.reader.readexactly(count))

    async def rest(self) -> bytes:
        """Everything until the gateway closes the connection."""
        return await within(self.reader.read())

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def started(backend: HttpBackend, stream: io.StringIO) -> tuple[Gateway, int]:
    gw = Gateway(config(await backend.start()), JsonLog(stream))
    await gw.start()
    port = int(gw.bound_addresses()[0].rsplit(":", 1)[1])
    return gw, port


# -- the phase table -----------------------------------------------------------------------


@pytest.mark.parametrize("old", ORDER)
@pytest.mark.parametrize("new", ORDER)
def test_each_phase_moves_only_to_the_next(old: GatewayPhase, new: GatewayPhase) -> None:
    allowed = ORDER.index(new) == ORDER.index(old) + 1
    assert (new in GATEWAY_MOVES[old]) is allowed


def test_the_table_names_every_phase() -> None:
    assert set(GATEWAY_MOVES) == set(GatewayPhase)


def phase_and_draining(gw: Gateway) -> tuple[GatewayPhase, bool]:
    """Read anew at each call: mypy keeps a property narrowed by an assert even across
    the calls that change it."""
    return gw.phase, gw.draining


def test_moves_in_order_are_made_and_the_rest_refused(run: Runner) -> None:
    async def main() -> None:
        stream = io.StringIO()
        gw = Gateway(config(9), JsonLog(stream))  # never started: nothing to close
        assert phase_and_draining(gw) == (GatewayPhase.RUNNING, False)
        with pytest.raises(BadTransitionError, match="RUNNING -> STOPPING"):
            await gw.stop()
        gw.begin_drain(DRAIN_TIMEOUT_S)
        assert phase_and_draining(gw) == (GatewayPhase.DRAINING, True)
        with pytest.raises(BadTransitionError, match="DRAINING -> DRAINING"):
            gw.begin_drain(DRAIN_TIMEOUT_S)
        await within(gw.stop())
        assert phase_and_draining(gw) == (GatewayPhase.STOPPED, True)
        with pytest.raises(BadTransitionError, match="STOPPED -> DRAINING"):
            gw.begin_drain(DRAIN_TIMEOUT_S)
        with pytest.raises(BadTransitionError, match="STOPPED -> STOPPING"):
            await gw.stop()
        moves = [(r["was"], r["phase"]) for r in phase_lines(stream)]
        assert moves == [("running", "draining"), ("draining", "stopping"), ("stopping", "stopped")]

    run(main())


# -- drains on a real loop -----------------------------------------------------------------


def test_a_drain_without_connections_ends_at_once(run: Runner) -> None:
    async def main() -> None:
        stream = io.StringIO()
        backend = HttpBackend()
        gw, port = await started(backend, stream)
        await within(gw.drain())
        assert gw.phase is GatewayPhase.STOPPED
        with pytest.raises(ConnectionRefusedError):  # the listener is closed
            await asyncio.open_connection("127.0.0.1", port)
        events = [r["event"] for r in records(stream)]
        assert events == ["listening", "phase", "draining", "phase", "phase", "stopped"]
        stopping = phase_lines(stream)[1]
        assert (stopping["connections"], stopping["tasks"]) == (0, 0)
        await backend.close()

    run(main())


def test_a_drain_closes_an_idle_keep_alive_connection_at_once(run: Runner) -> None:
    async def main() -> None:
        stream = io.StringIO()
        backend = HttpBackend()
        gw, port = await started(backend, stream)
        client = await Client.connect(port)
        client.writer.write(GET)
        assert (await client.head()).startswith(b"HTTP/1.1 200 ")
        assert await client.exactly(4) == b"abcd"
        assert len(gw.connections) == 1  # kept alive, between requests

        await within(gw.drain())
        assert await client.rest() == b""  # closed by the gateway, without an answer
        draining = next(r for r in records(stream) if r["event"] == "draining")
        assert draining["connections"] == 1
        assert phase_lines(stream)[1]["connections"] == 0  # gone before STOPPING
        await client.close()
        await backend.close()

    run(main())


def test_a_connection_that_goes_idle_during_the_drain_is_closed_then(run: Runner) -> None:
    # Its answer began before the drain, with keep-alive: when it ends the connection is
    # idle, and the adapter says so; nothing waits for drain_timeout_s.
    async def main() -> None:
        stream = io.StringIO()
        backend = HttpBackend(hold_body=True)
        gw, port = await started(backend, stream)
        client = await Client.connect(port)
        client.writer.write(GET)
        head = await client.head()
        assert b"connection: close" not in head.lower()
        assert await client.exactly(2) == b"ab"

        gw.begin_drain(DRAIN_TIMEOUT_S)
        assert len(gw.connections) == 1  # busy: not closed
        drained = asyncio.ensure_future(gw.wait_drained(DRAIN_TIMEOUT_S))
        backend.release.set()
        assert await client.exactly(2) == b"cd"
        assert await client.rest() == b""
        assert await within(drained) is True
        await within(gw.stop())
        assert phase_lines(stream)[1]["connections"] == 0
        await client.close()
        await backend.close()

    run(main())


def test_an_arrival_during_the_drain_is_answered_and_a_silent_one_closed(run: Runner) -> None:
    # The listener stays open while a busy connection holds the drain: a new client's
    # request gets 503 shutting_down, one that sends nothing is closed after
    # ARRIVAL_GRACE_S; the drain ends when the busy one's answer is done.
    async def main() -> None:
        stream = io.StringIO()
        backend = HttpBackend(hold_head=True)
        gw, port = await started(backend, stream)
        holder = await Client.connect(port)
        holder.writer.write(GET)
        await within(backend.got_request.wait())

        gw.begin_drain(DRAIN_TIMEOUT_S)
        drained = asyncio.ensure_future(gw.wait_drained(DRAIN_TIMEOUT_S))
        asking = await Client.connect(port)
        asking.writer.write(GET)
        answer = await asking.rest()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"x-wsgate-cause: shutting_down" in answer.lower()
        silent = await Client.connect(port)
        assert await silent.rest() == b""  # after ARRIVAL_GRACE_S, not drain_timeout_s
        assert not drained.done()  # the holder is still waiting for its answer

        backend.release.set()
        head = await holder.head()
        assert b"connection: close" in head.lower()  # answered during the drain
        assert await holder.rest() == b"abcd"
        assert await within(drained) is True
        await within(gw.stop())
        for client in (holder, asking, silent):
            await client.close()
        await backend.close()

    run(main())


def test_connect_tasks_are_cancelled_when_stopping(
    run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        connecting = asyncio.Event()
        cancelled: list[Backend] = []

        async def hanging_connect(self: Pool, backend: Backend) -> Any:
            connecting.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(backend)
                raise

        monkeypatch.setattr(Pool, "connect", hanging_connect)
        stream = io.StringIO()
        backend = HttpBackend()
        gw, port = await started(backend, stream)
        client = await Client.connect(port)
        client.writer.write(GET)
        await within(connecting.wait())
        assert len(gw.tasks) == 1

        await within(gw.drain(0.0))  # the drain times out at once: STOPPING
        assert [str(b.address) for b in cancelled] == [f"127.0.0.1:{backend.port}"]
        assert not gw.tasks and not gw.connections
        stopping = phase_lines(stream)[1]
        assert (stopping["connections"], stopping["tasks"]) == (1, 1)
        assert await client.rest() == b""
        await client.close()
        await backend.close()

    run(main())
