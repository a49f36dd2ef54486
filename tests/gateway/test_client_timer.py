"""The adapter's one timer for the core's deadline (client.py): a deadline moved later
keeps the armed timer, which re-arms when it fires early; one moved earlier replaces it.
Told apart by what the client gets: the response timeout's 504 comes neither at the
header timeout's earlier deadline nor after the later one."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Coroutine
from typing import Any

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
from wsgate.gateway.server import Gateway
from wsgate.observe.log import JsonLog

GET = b"GET /page HTTP/1.1\r\nHost: gw.test\r\n\r\n"
WAIT_S = 20.0


async def silent_backend() -> tuple[asyncio.Server, int]:
    """Reads the request and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def answer_time(header_timeout_s: float, response_timeout_s: float) -> tuple[bytes, float]:
    """The status line the client gets for a request the backend never answers, and how
    long after the request it came."""
    server, port = await silent_backend()
    pool = PoolConfig(
        "app",
        (BackendConfig(Address("127.0.0.1", port)),),
        health=HealthCheckConfig(kind="none"),
        response_timeout_s=response_timeout_s,
        retries=0,
    )
    listen = (Address("127.0.0.1", 0),)
    server_config = ServerConfig(listen=listen, header_timeout_s=header_timeout_s)
    gw = Gateway(
        Config(server=server_config, pools={"app": pool}, routes=(RouteConfig("app"),)),
        JsonLog(io.StringIO()),
    )
    await gw.start()
    try:
        gw_port = int(gw.bound_addresses()[0].rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
        sent = time.monotonic()
        writer.write(GET)
        async with asyncio.timeout(WAIT_S):
            status = await reader.readline()
        took = time.monotonic() - sent
        writer.close()
        return status, took
    finally:
        gw.begin_drain(1.0)
        await gw.stop()
        server.close()


Runner = Callable[[Coroutine[Any, Any, tuple[bytes, float]]], tuple[bytes, float]]
RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


@RUNNERS
def test_a_later_deadline_is_kept_until_it_comes(run: Runner) -> None:
    # Armed for the header timeout (0.3 s) when the client connected; the response
    # timeout (1.5 s) is later: the timer fires at 0.3 s and re-arms, the 504 comes
    # at 1.5 s, not at 0.3 s.
    status, took = run(answer_time(0.3, 1.5))
    assert status.startswith(b"HTTP/1.1 504 ")
    assert took >= 1.4


@RUNNERS
def test_an_earlier_deadline_replaces_the_armed_timer(run: Runner) -> None:
    # Armed for the header timeout (12 s); the response timeout (0.3 s) comes first.
    status, took = run(answer_time(12.0, 0.3))
    assert status.startswith(b"HTTP/1.1 504 ")
    assert took < 10.0
