"""WebSockets through a real `wsgate serve` process to real `websockets` backends."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.support.backends import echo, ws_server
from tests.support.gateway import RunningGateway, gateway
from tests.support.procs import free_port, running

SIZES = [0, 125, 126, 65_535, 65_536, 16 * 1024 * 1024]


@pytest.fixture
def echo_gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    with (
        ws_server(echo, max_size=None, compression=None) as backend,
        gateway(tmp_path, upstreams=[backend]) as gw,
    ):
        yield gw


@pytest.mark.parametrize("size", SIZES)
def test_text_and_binary_messages_echo_intact(echo_gateway: RunningGateway, size: int) -> None:
    binary = os.urandom(size)
    text = ("é" * (size // 2)) + ("x" * (size % 2))  # UTF-8, exactly `size` bytes
    assert len(text.encode()) == size
    with connect(f"{echo_gateway.url}/echo", max_size=None, compression=None) as ws:
        ws.send(binary)
        assert ws.recv(timeout=60) == binary
        ws.send(text)
        assert ws.recv(timeout=60) == text


def test_ping_pong_through_gateway(echo_gateway: RunningGateway) -> None:
    with connect(f"{echo_gateway.url}/", compression=None) as ws:
        pong = ws.ping(b"are you there")
        assert pong.wait(timeout=20)


def test_close_codes_and_reasons_carried_both_ways(tmp_path: Path) -> None:
    seen: list[tuple[int | None, str | None]] = []
    got = threading.Event()

    async def handler(conn: ServerConnection) -> None:
        message = await conn.recv()
        if message == "close-from-server":
            await conn.close(4002, "server says bye")
            return
        try:
            await conn.recv()
        except ConnectionClosed:
            seen.append((conn.close_code, conn.close_reason))
            got.set()

    with ws_server(handler) as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        with connect(f"{gw.url}/") as ws:
            ws.send("close-from-server")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=20)
            assert ws.close_code == 4002
            assert ws.close_reason == "server says bye"
        with connect(f"{gw.url}/") as ws:
            ws.send("wait")
            ws.close(4001, "client says bye")
        assert got.wait(20)
        assert seen == [(4001, "client says bye")]


def test_subprotocol_and_permessage_deflate_negotiated_through(tmp_path: Path) -> None:
    with (
        ws_server(echo, subprotocols=["chat.v2", "chat.v1"]) as backend,
        gateway(tmp_path, upstreams=[backend]) as gw,
        connect(f"{gw.url}/", subprotocols=[Subprotocol("chat.v1")], compression="deflate") as ws,
    ):
        assert ws.subprotocol == "chat.v1"
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        ws.send("z" * 100_000)
        assert ws.recv(timeout=20) == "z" * 100_000


def test_backend_that_breaks_tunnel_gives_client_1014(tmp_path: Path) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.send("last words")
        await asyncio.sleep(0.2)
        conn.transport.abort()  # a crash: no close frame

    with ws_server(handler) as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        with connect(f"{gw.url}/") as ws:
            assert ws.recv(timeout=20) == "last words"
            with pytest.raises(ConnectionClosedError):
                ws.recv(timeout=20)
            assert ws.close_code == 1014
            assert ws.close_reason is not None and ws.close_reason.startswith("bad gateway")
        gw.wait_for_log("upstream_tunnel_broken")


def test_thousand_concurrent_connections_relay_without_loss(echo_gateway: RunningGateway) -> None:
    connections = 1000
    messages = 5

    async def main() -> list[int]:
        all_open = asyncio.Event()
        opened = 0
        gate = asyncio.Semaphore(100)  # connect in waves so the backlog is never the test

        async def one(index: int) -> int:
            nonlocal opened
            async with gate:
                ws = await async_connect(
                    f"{echo_gateway.url}/", compression=None, open_timeout=60, close_timeout=30
                )
            async with ws:
                opened += 1
                if opened == connections:
                    all_open.set()
                await asyncio.wait_for(all_open.wait(), 120)  # all 1,000 tunnels open at once
                received = 0
                for seq in range(messages):
                    payload = f"{index}:{seq}"
                    await ws.send(payload)
                    if await asyncio.wait_for(ws.recv(), 60) == payload:
                        received += 1
                return received

        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(connections))), 240)

    results = asyncio.run(main())
    assert results == [messages] * connections


def test_idle_tunnel_timeout_closes_with_1001(tmp_path: Path) -> None:
    with ws_server() as backend:
        config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
[pools.app]
backends = ["127.0.0.1:{backend}"]
tunnel_idle_timeout_s = 1
"""
        with gateway(tmp_path, config=config) as gw, connect(f"{gw.url}/") as ws:
            ws.send("still here")
            assert ws.recv(timeout=20) == "still here"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=20)
            assert ws.close_code == 1001
            assert ws.close_reason == "idle timeout"


def test_drain_on_sigterm_sends_1001_to_open_tunnels(tmp_path: Path) -> None:
    with ws_server() as backend:
        config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
drain_timeout_s = 1
[pools.app]
backends = ["127.0.0.1:{backend}"]
"""
        with gateway(tmp_path, config=config) as gw, connect(f"{gw.url}/") as ws:
            ws.send("before")
            assert ws.recv(timeout=20) == "before"
            gw.proc.popen.terminate()  # SIGTERM to the gateway's PID
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=20)
            assert ws.close_code == 1001
            assert gw.proc.popen.wait(timeout=20) == 0


def test_workers_share_the_port(tmp_path: Path) -> None:
    with ws_server() as backend:
        port = free_port()
        argv = [sys.executable, "-m", "wsgate", "serve", "--workers", "2"]
        argv += ["--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{backend}"]
        with running(argv, tmp_path / "workers.log", port) as proc:
            for index in range(40):
                with connect(f"ws://127.0.0.1:{port}/") as ws:
                    ws.send(str(index))
                    assert ws.recv(timeout=20) == str(index)
            children = subprocess.run(
                ["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            assert len(children) == 2
        records = [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
        served_by = {r["pid"] for r in records if r["event"] == "access"}
        assert served_by == {int(pid) for pid in children}
        assert sum(1 for r in records if r["event"] == "stopped") == 2
