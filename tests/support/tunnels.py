"""Many WebSocket tunnels held open through the gateway from one asyncio loop, each noting
when and how it was closed: what the drain and reload tests measure on the clients' side.

The backends are tests/support/named_backend.py, which greets each client with its name:
so each tunnel also knows which backend it reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

OPEN_TIMEOUT_S = 60.0


@dataclass
class HeldTunnel:
    ws: ClientConnection
    backend: str  # the greeting: the backend's name
    closed_at: float | None = None  # time.monotonic() when the close was seen
    code: int | None = None  # the close code the gateway (or backend) sent
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def watch(self) -> None:
        try:
            while True:
                await self.ws.recv()
        except ConnectionClosed:
            pass
        self.closed_at = time.monotonic()
        rcvd = self.ws.protocol.close_rcvd
        self.code = rcvd.code if rcvd is not None else None

    async def echo(self, text: str, timeout_s: float = 20.0) -> str:
        """Send `text` and wait for it back; while watch() runs, it reads instead, so
        this is for tunnels not watched."""
        await self.ws.send(text)
        answer = await asyncio.wait_for(self.ws.recv(), timeout_s)
        return str(answer)


async def open_tunnel(url: str, *, ssl_context: ssl.SSLContext | None = None) -> HeldTunnel:
    ws = await connect(
        url,
        open_timeout=OPEN_TIMEOUT_S,
        ping_interval=None,
        close_timeout=10,
        max_queue=None,
        ssl=ssl_context,
    )
    greeting = await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT_S)
    return HeldTunnel(ws, str(greeting))


async def open_tunnels(
    url: str,
    count: int,
    *,
    concurrency: int = 50,
    watch: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> list[HeldTunnel]:
    """`count` tunnels, at most `concurrency` handshakes at a time; each watched for its
    close when `watch`. A failed handshake fails the call."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> HeldTunnel:
        async with gate:
            held = await open_tunnel(url, ssl_context=ssl_context)
        if watch:
            held.task = asyncio.create_task(held.watch())
        return held

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def wait_closed(tunnels: list[HeldTunnel], timeout_s: float) -> None:
    """Until every watched tunnel has seen its close, or `timeout_s`."""
    tasks = [t.task for t in tunnels if t.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout_s)


async def close_all(tunnels: list[HeldTunnel]) -> None:
    for held in tunnels:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(held.ws.close(), 5)
        if held.task is not None:
            held.task.cancel()
            with contextlib.suppress(BaseException):
                await held.task


def per_second(times: list[float], start: float) -> dict[int, int]:
    """How many of `times` fall in each whole second after `start`."""
    counts: dict[int, int] = {}
    for at in times:
        second = int(at - start)
        counts[second] = counts.get(second, 0) + 1
    return counts
