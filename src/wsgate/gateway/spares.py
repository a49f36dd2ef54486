"""Connections opened ahead (`preconnect = true`): while handshakes wait in a pool's
queue, each available backend keeps one connection open and idle, so that the handshake
given a slot the moment one frees is written at once, in the same callback as the 101
that freed it, not after a connect and the loop iterations around it.

A spare is closed as soon as the queue is empty, and with every idle connection of a
backend that its health check finds down: a connection that never sends a request holds a
backend's graceful shutdown (a `websockets` server waits for its opening handshake).

Under a storm the backend's slots are the bottleneck, and the time from a slot's 101 to
the next request reaching the backend is a slot the backend holds idle: measured in
bench S5, about a tenth of its capacity. Envoy calls this preconnecting
(`preconnect_policy`). Off by default: a backend that gives each connection a worker
before its request arrives (a threaded server) would hold a worker for the spare.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, Protocol, TypeVar

from wsgate.errors import ConnectError
from wsgate.gateway.tasks import cancel_and_wait
from wsgate.gateway.upstream import UpstreamConnection


class SpareBackend(Protocol):
    """What a spare needs of a backend: whether it takes handshakes now, and its idle
    connections."""

    @property
    def idle(self) -> list[UpstreamConnection]: ...
    def available_now(self) -> bool: ...
    def __hash__(self) -> int: ...


B = TypeVar("B", bound=SpareBackend)


class Spares(Generic[B]):
    """One connection opening at a time per backend, for as long as it has no idle one.
    `connect` opens one (ConnectError when it cannot), `keep` files it as idle."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connect: Callable[[B], Awaitable[UpstreamConnection]],
        keep: Callable[[UpstreamConnection], None],
    ) -> None:
        self._loop = loop
        self._connect = connect
        self._keep = keep
        self._opening: dict[B, asyncio.Task[None]] = {}
        self._unused: set[UpstreamConnection] = set()  # kept idle, not taken yet
        self.opened = 0  # spares that connected, for the tests and the curious

    def top_up(self, backends: Iterable[B]) -> None:
        """Open a connection to each backend that takes handshakes, has no idle
        connection and none opening."""
        for backend in backends:
            if backend.idle or backend in self._opening or not backend.available_now():
                continue
            self._opening[backend] = self._loop.create_task(self._open(backend))

    @property
    def opening(self) -> int:
        """How many connections are being opened now."""
        return len(self._opening)

    async def _open(self, backend: B) -> None:
        try:
            conn = await self._connect(backend)
        except ConnectError:
            return  # the handshake that would have used it finds out for itself
        finally:
            self._opening.pop(backend, None)
        self.opened += 1
        self._unused.add(conn)
        self._keep(conn)

    def taken(self, conn: UpstreamConnection) -> None:
        """`conn` left the idle list for a handshake: no longer a spare."""
        if self._unused:
            self._unused.discard(conn)

    def drop_unused(self) -> None:
        """The queue is empty: close the spares nobody took."""
        if not self._unused:
            return
        unused, self._unused = self._unused, set()
        for conn in unused:
            conn.close()

    async def close(self) -> None:
        """Cancel the openings under way (the pool closes its connections itself)."""
        tasks = list(self._opening.values())
        self._opening.clear()
        await cancel_and_wait(tasks)
