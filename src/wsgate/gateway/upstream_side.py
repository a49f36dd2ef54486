"""The backend side of a client connection: the pool's answer to a waiting handshake and
the upstream connection's events, delivered to the active request's `Exchange`. Pure.

A `ClientCore` takes the client's side (bytes, half-close, timers); this is the other
side, kept apart so that each reads as one job. Every method takes the event, passes it
to the exchange when there still is one (a late event for a request that is over is
dropped, or its slot given back), and returns the connection's commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsgate.gateway.commands import Command, ReleaseUpstream
from wsgate.gateway.core import ClientCore
from wsgate.gateway.states import Phase
from wsgate.protocol.headers import Headers

if TYPE_CHECKING:
    from wsgate.gateway.pool import Backend


class UpstreamSide:
    __slots__ = ("core",)

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    # == the pool (through the adapter, which is the pool's waiter) =======================
    def admitted(self, backend: Backend, now: float) -> list[Command]:
        """A handshake slot on `backend` is ours, from the queue."""
        core = self.core
        core.now = now
        if core.exchange is None or core.phase is not Phase.BUSY:
            backend.pool.handshake_done(backend, 0.0, 0, "aborted")
        else:
            core.exchange.admitted(backend)
        return core.done()

    def rejected(self, cause: str, detail: str, retry_after_s: int, now: float) -> list[Command]:
        """The pool will not give us a slot (queue timeout, no backend left, draining)."""
        core = self.core
        core.now = now
        if core.exchange is not None:
            core.exchange.rejected(cause, detail, retry_after_s)
        return core.done()

    def hash_key(self) -> bytes | None:
        exchange = self.core.exchange
        return exchange.hash_key() if exchange is not None else None

    def excluded(self) -> frozenset[Backend]:
        active = self.core.active
        return frozenset(active.tried) if active is not None else frozenset()

    # == the upstream connection ===========================================================
    def upstream_ready(self, connect_ms: float | None, now: float) -> list[Command]:
        """The connection `OpenUpstream` asked for is attached."""
        core = self.core
        core.now = now
        if core.exchange is None:
            core.commands.append(ReleaseUpstream(reuse=True))
        else:
            core.exchange.ready(connect_ms)
        return core.done()

    def upstream_failed(self, cause: str, detail: str, now: float) -> list[Command]:
        """`OpenUpstream` could not connect."""
        core = self.core
        core.now = now
        if core.exchange is not None:
            core.exchange.connect_failed(cause, detail)
        return core.done()

    def response_head(
        self,
        status: int,
        reason: bytes,
        version: str,
        headers: Headers,
        keep_alive: bool,
        now: float,
    ) -> list[Command]:
        core = self.core
        core.now = now
        if core.exchange is not None:
            core.exchange.response_head(status, reason, headers, keep_alive)
        return core.done()

    def response_body(self, data: bytes) -> list[Command]:
        core = self.core
        if core.exchange is not None:
            core.exchange.response_body(data)
        return core.flush()

    def response_complete(self, now: float) -> list[Command]:
        core = self.core
        core.now = now
        if core.exchange is not None:
            core.exchange.response_complete()
        return core.done()

    def upstream_upgrade(self, tail: bytes, now: float) -> list[Command]:
        """The backend's bytes after its 101: the tunnel starts with them."""
        core = self.core
        core.now = now
        core.switch_to_tunnel(tail)
        return core.done()

    def upstream_eof(self, now: float) -> list[Command]:
        core = self.core
        core.now = now
        if core.exchange is not None:
            core.exchange.upstream_eof()
        return core.done()

    def upstream_lost(self, error: str, now: float) -> list[Command]:
        core = self.core
        core.now = now
        if core.exchange is not None:
            core.exchange.upstream_lost(error)
        return core.done()

    def upstream_bad_response(self, reason: str, cause: str, now: float) -> list[Command]:
        core = self.core
        core.now = now
        if core.exchange is not None:
            core.exchange.bad_response(reason, cause)
        return core.done()

    def upstream_write_paused(self, paused: bool) -> list[Command]:
        self.core.pause_for_upstream(paused)
        return self.core.flush()
