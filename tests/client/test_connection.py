"""wsgate.client against real `websockets` servers on 127.0.0.1 in the test's own event
loop: echo, restarts on the same port, 1013 closes with a retry-after reason, 503 with
Retry-After, give-up statuses, the queue while disconnected, hooks and close()."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.support.backends import echo
from tests.support.procs import free_port
from wsgate.client import (
    BackoffConfig,
    ClientClosedError,
    Closed,
    Failure,
    GaveUpError,
    NotConnectedError,
    ReconnectingConnection,
    Refused,
    connect,
)

DEADLINE_S = 60.0  # every test's whole run; generous for a slow shared machine
FAST = BackoffConfig(base_s=0.05, cap_s=0.5, hint_spread_min_s=0.2, hint_spread_ratio=0.2)
Handler = Callable[[ServerConnection], Awaitable[None]]


def run(coro: Awaitable[None]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, DEADLINE_S)

    asyncio.run(bounded())


@asynccontextmanager
async def server(port: int, handler: Handler = echo, **kwargs: Any) -> AsyncIterator[Server]:
    async with serve(handler, "127.0.0.1", port, **kwargs) as srv:
        yield srv


def client(port: int, **kwargs: Any) -> ReconnectingConnection:
    kwargs.setdefault("backoff", FAST)
    return connect(
        f"ws://127.0.0.1:{port}/",
        rng=random.Random(1),
        proxy=None,
        open_timeout=10,
        close_timeout=5,
        **kwargs,
    )


def disconnect_signal() -> tuple[asyncio.Event, Callable[..., Awaitable[None]]]:
    """An event set by the client's on_disconnect hook, and the hook."""
    seen = asyncio.Event()

    async def on_disconnect(conn: ReconnectingConnection, failure: Failure) -> None:
        seen.set()

    return seen, on_disconnect


def test_echo_and_close_like_websockets() -> None:
    async def main() -> None:
        port = free_port()
        async with server(port):
            conn = await client(port)
            assert conn.connected
            await conn.send("hello")
            assert await conn.recv() == "hello"
            await conn.send(b"\x00\x01")
            assert await conn.recv() == b"\x00\x01"
            await conn.close()
            assert not conn.connected
            assert [m async for m in conn] == []  # iteration just ends after close()
            with pytest.raises(ClientClosedError):
                await conn.send("late")
            with pytest.raises(ClientClosedError):
                await conn.recv()
            assert (conn.stats.attempts, conn.stats.connects) == (1, 1)
            assert conn.stats.failed_attempts == 0

    run(main())


def test_a_restarted_server_is_reconnected_and_the_hooks_run() -> None:
    events: list[str] = []

    async def on_connect(conn: ReconnectingConnection) -> None:
        events.append("connect")
        await conn.send("subscribe")

    async def on_disconnect(conn: ReconnectingConnection, failure: Failure) -> None:
        assert isinstance(failure, Closed)
        events.append(f"disconnect {failure.code}")

    async def main() -> None:
        port = free_port()
        async with server(port) as first:
            conn = await client(port, on_connect=on_connect, on_disconnect=on_disconnect)
            assert await conn.recv() == "subscribe"
            first.close()  # websockets closes its connections with 1001 going away
            await first.wait_closed()
        await asyncio.sleep(0.5)  # down for a while: attempts are refused
        async with server(port):
            # recv waits through the gap and reads the new connection's echo.
            assert await conn.recv() == "subscribe"
            await conn.send("after")
            assert await conn.recv() == "after"
            await conn.close()
        assert events == ["connect", "disconnect 1001", "connect"]
        assert conn.stats.connects == 2
        assert conn.stats.failures["close_1001"] == 1
        assert conn.stats.failures["unreachable_refused"] >= 1

    run(main())


def test_a_1013_close_with_a_retry_after_reason_is_waited_for() -> None:
    opened: list[float] = []
    hint_s = 1

    async def overloaded_once(ws: ServerConnection) -> None:
        opened.append(asyncio.get_running_loop().time())
        if len(opened) == 1:
            await ws.close(1013, f"retry-after={hint_s}; cause=overloaded_queue_full")
            return
        await echo(ws)

    async def main() -> None:
        port = free_port()
        disconnects: list[Failure] = []

        async def on_disconnect(conn: ReconnectingConnection, failure: Failure) -> None:
            disconnects.append(failure)

        async with server(port, overloaded_once):
            conn = await client(port, on_disconnect=on_disconnect)
            await conn.send("x")
            assert await conn.recv() == "x"
            await conn.close()
        assert len(opened) == 2
        # The second attempt came no sooner than the hint (and within hint + spread).
        assert opened[1] - opened[0] >= hint_s - 0.05
        assert conn.stats.failures["close_1013"] == 1
        # Seen either as a close right after the 101 or as an open connection that ended.
        told = Closed(1013, "retry-after=1; cause=overloaded_queue_full")
        assert all(failure == told for failure in disconnects)

    run(main())


def test_a_503_with_retry_after_is_waited_for() -> None:
    seen: list[float] = []

    def refuse_first(ws: ServerConnection, request: Request) -> Response | None:
        seen.append(asyncio.get_running_loop().time())
        if len(seen) == 1:
            return Response(503, "Service Unavailable", Headers({"Retry-After": "1"}), b"")
        return None

    async def main() -> None:
        port = free_port()
        async with server(port, process_request=refuse_first):
            conn = await client(port)
            await conn.close()
        assert len(seen) == 2
        assert seen[1] - seen[0] >= 1.0 - 0.05
        assert conn.stats.failures == {"http_503": 1}

    run(main())


@pytest.mark.parametrize("status", [400, 401, 403, 404, 426])
def test_a_status_retrying_cannot_help_raises_gave_up(status: int) -> None:
    def refuse(ws: ServerConnection, request: Request) -> Response:
        return ws.respond(status, "no\n")

    async def main() -> None:
        port = free_port()
        async with server(port, process_request=refuse):
            conn = client(port)
            with pytest.raises(GaveUpError, match=str(status)) as caught:
                await conn
            assert caught.value.failure == Refused(status)
            with pytest.raises(GaveUpError):
                await conn.recv()
            await conn.close()
        assert conn.stats.attempts == 1

    run(main())


def test_nothing_listening_and_max_attempts_gives_up() -> None:
    async def main() -> None:
        conn = client(free_port(), backoff=BackoffConfig(base_s=0.01, max_attempts=3))
        with pytest.raises(GaveUpError, match="unreachable_refused"):
            await conn
        assert conn.stats.attempts == 3
        assert conn.stats.failures == {"unreachable_refused": 3}

    run(main())


def test_messages_sent_while_down_are_queued_up_to_the_bound_and_sent_in_order() -> None:
    received: list[str] = []
    got_three = asyncio.Event()

    async def record(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(str(message))
            if len(received) == 3:
                got_three.set()

    async def on_connect(conn: ReconnectingConnection) -> None:
        await conn.send("subscribe")

    async def main() -> None:
        port = free_port()
        async with server(port, record) as first:
            seen, on_disconnect = disconnect_signal()
            conn = await client(
                port,
                on_connect=on_connect,
                on_disconnect=on_disconnect,
                queue_while_disconnected=2,
            )
            first.close()
            await first.wait_closed()
        await seen.wait()
        received.clear()
        await conn.send("one")
        await conn.send("two")
        assert conn.pending == 2
        with pytest.raises(NotConnectedError, match="queue_while_disconnected=2"):
            await conn.send("three")
        async with server(port, record):
            await asyncio.wait_for(got_three.wait(), 30)
            # The hook's subscription goes first, then the queue in order.
            assert received == ["subscribe", "one", "two"]
            assert conn.pending == 0
            await conn.close()

    run(main())


def test_queueing_off_refuses_at_once_while_down() -> None:
    async def main() -> None:
        port = free_port()
        async with server(port) as first:
            seen, on_disconnect = disconnect_signal()
            conn = await client(port, on_disconnect=on_disconnect)
            first.close()
            await first.wait_closed()
        await seen.wait()
        with pytest.raises(NotConnectedError, match="queue_while_disconnected=0"):
            await conn.send("x")
        await conn.close()

    run(main())


def test_close_during_the_back_off_returns_promptly() -> None:
    async def main() -> None:
        port = free_port()
        slow = BackoffConfig(base_s=30.0, cap_s=30.0)
        async with server(port) as first:
            seen, on_disconnect = disconnect_signal()
            conn = await client(port, backoff=slow, on_disconnect=on_disconnect)
            first.close()
            await first.wait_closed()
        await seen.wait()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await conn.close()
        # Not a speed check: the back-off would have held it for up to 30 s.
        assert loop.time() - started < 20.0
        with pytest.raises(ClientClosedError):
            await conn.wait_connected()

    run(main())


def test_an_exception_in_a_hook_stops_the_client_and_reaches_the_reader() -> None:
    class HookFailedError(Exception):
        pass

    async def on_connect(conn: ReconnectingConnection) -> None:
        raise HookFailedError("resubscribe failed")

    async def wait(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async def main() -> None:
        port = free_port()
        async with server(port, wait):
            conn = client(port, on_connect=on_connect)
            with pytest.raises(HookFailedError):
                await conn
            with pytest.raises(HookFailedError):
                await conn.recv()
            await conn.close()

    run(main())


def test_async_with_and_iteration_across_a_restart() -> None:
    async def push_two(ws: ServerConnection) -> None:
        await ws.send("a")
        await ws.send("b")
        await asyncio.sleep(0.2)  # a 101 closed at once counts as an overload answer
        await ws.close(1012, "restart")

    async def main() -> None:
        port = free_port()
        got: list[str] = []
        async with server(port, push_two), client(port) as conn:
            async for message in conn:
                got.append(str(message))
                if len(got) == 4:
                    break
        assert got == ["a", "b", "a", "b"]
        assert conn.stats.failures["close_1012"] >= 1

    run(main())


def test_bad_arguments_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="queue_while_disconnected"):
        connect("ws://127.0.0.1:1/", queue_while_disconnected=-1)
    with pytest.raises(Exception, match="http"):
        connect("http://127.0.0.1:1/")
