"""The client connection's way to a backend until the 101: the I/O half of the core's
`UpstreamSide`.

`UpstreamLink` carries out the core's upstream commands (open one, idle from the pool or
newly connected; send to it; release it) and hears what comes back: the pool's answers
to a queued handshake (it is the pool's `Waiter`) and the upstream connection's events
(its `ResponseSink`). Each goes to the core's `UpstreamSide`, and the commands that
come back go to the client connection (`client.py`) to carry out, in order with its
own. The tunnel takes the upstream over after the 101; the link is dropped then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from wsgate.gateway.commands import Command, OpenUpstream, ReleaseUpstream
from wsgate.gateway.pool import Backend, ConnectError
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.gateway.upstream_side import UpstreamSide
from wsgate.protocol.headers import Headers


class CommandRunner(Protocol):
    """What the link hands commands to, and asks about the client (the client connection)."""

    @property
    def write_paused(self) -> bool: ...
    def run(self, commands: list[Command]) -> None: ...
    def create_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...


class UpstreamLink:
    # Slots: one per handshake in flight.
    __slots__ = ("_connect_task", "loop", "owner", "side", "upstream")

    def __init__(self, owner: CommandRunner, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        self.loop = loop
        self.side: UpstreamSide | None = None  # set once the core exists; None once it ends
        self.upstream: UpstreamConnection | None = None
        self._connect_task: asyncio.Task[None] | None = None

    # == the core's commands ==============================================================
    def open(self, command: OpenUpstream) -> None:
        backend: Backend = command.backend
        if not command.fresh:
            conn = backend.pool.take_idle(backend)
            if conn is not None:
                self._attach(conn, command)
                self._ready(None)
                return
        self._connect_task = self.owner.create_task(self._connect(backend, command))

    async def _connect(self, backend: Backend, command: OpenUpstream) -> None:
        started = self.loop.time()
        try:
            conn = await backend.pool.connect(backend)
        except ConnectError as failure:
            self._connect_task = None
            if self.side is not None:
                now = self.loop.time()
                self.owner.run(self.side.upstream_failed(failure.cause, failure.detail, now))
            return
        self._connect_task = None
        self._attach(conn, command)
        self._ready((self.loop.time() - started) * 1000)

    def _ready(self, connect_ms: float | None) -> None:
        assert self.side is not None
        self.owner.run(self.side.upstream_ready(connect_ms, self.loop.time()))

    def _attach(self, conn: UpstreamConnection, command: OpenUpstream) -> None:
        self.upstream = conn
        conn.attach(self, head_request=command.head_request, head_limit=command.head_limit)
        if self.owner.write_paused:
            conn.reading(False)

    def send(self, data: bytes) -> None:
        upstream = self.upstream
        if upstream is not None:
            upstream.write(data)

    def release(self, command: ReleaseUpstream) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is None:
            return
        if command.reuse:
            upstream.backend.pool.release(upstream)
            return
        upstream.detach()
        if command.abort:
            upstream.abort()
        else:
            upstream.close()

    def reading(self, on: bool) -> None:
        """Read the upstream again, or stop: the client's writes are paused."""
        if self.upstream is not None:
            self.upstream.reading(on)

    def client_lost(self) -> None:
        """The client is gone: a connect under way is not wanted any more."""
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None

    # == Waiter: the pool's answers to a queued handshake =================================
    def admitted(self, backend: Backend) -> None:
        if self.side is None:
            backend.pool.handshake_done(backend, 0.0, 0, "aborted")
            return
        self.owner.run(self.side.admitted(backend, self.loop.time()))

    def rejected(self, cause: str, detail: str, retry_after_s: int) -> None:
        if self.side is not None:
            self.owner.run(self.side.rejected(cause, detail, retry_after_s, self.loop.time()))

    def hash_key(self) -> bytes | None:
        return self.side.hash_key() if self.side is not None else None

    def excluded(self) -> frozenset[Backend]:
        return self.side.excluded() if self.side is not None else frozenset()

    # == ResponseSink: the upstream connection's events ===================================
    def on_response_head(
        self, status: int, reason: bytes, version: str, headers: Headers, keep_alive: bool
    ) -> None:
        assert self.side is not None
        now = self.loop.time()
        self.owner.run(self.side.response_head(status, reason, version, headers, keep_alive, now))

    def on_response_body(self, data: bytes) -> None:
        assert self.side is not None
        self.owner.run(self.side.response_body(data))

    def on_response_complete(self) -> None:
        assert self.side is not None
        self.owner.run(self.side.response_complete(self.loop.time()))

    def on_upstream_upgrade(self, tail: bytes) -> None:
        assert self.side is not None
        self.owner.run(self.side.upstream_upgrade(tail, self.loop.time()))

    def on_upstream_eof(self) -> None:
        assert self.side is not None
        self.owner.run(self.side.upstream_eof(self.loop.time()))

    def on_upstream_lost(self, exc: Exception | None) -> None:
        self.upstream = None
        assert self.side is not None
        self.owner.run(self.side.upstream_lost(str(exc) if exc else "", self.loop.time()))

    def on_upstream_bad_response(
        self, reason: str, *, cause: str = "upstream_bad_response"
    ) -> None:
        self.upstream = None
        assert self.side is not None
        self.owner.run(self.side.upstream_bad_response(reason, cause, self.loop.time()))

    def on_upstream_pause_writing(self) -> None:
        assert self.side is not None
        self.owner.run(self.side.upstream_write_paused(True))

    def on_upstream_resume_writing(self) -> None:
        assert self.side is not None
        self.owner.run(self.side.upstream_write_paused(False))
