"""The frame-aware tunnel, for a pool that sets a keepalive or a frame limit: both
directions go through the pure `FrameRelay` (protocol/frame_relay.py), which reads frame
headers only and decides pings, limits and closes; `FrameTunnel` carries its decisions
out on the transports and keeps one timer at its next deadline. Everything else
(backpressure, half-close, the end's log line) it takes from the plain `Tunnel`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from wsgate.gateway.plain_tunnel import Tunnel
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.log import JsonLog
from wsgate.protocol.frame_relay import FrameRelay, RelaySettings, Side


class FrameTunnel(Tunnel):
    """A tunnel whose frames the `FrameRelay` follows both ways; this adapter writes what
    it says, shuts the sides it names, and keeps one timer at its next deadline."""

    __slots__ = ("_backend_shut", "_client_shut", "_relay_at", "_relay_timer", "relay")

    def __init__(
        self,
        client: asyncio.Transport,
        upstream: UpstreamConnection,
        settings: RelaySettings,
        *,
        loop: asyncio.AbstractEventLoop,
        log: JsonLog,
        fields: dict[str, Any],
        idle_timeout_s: float,
        on_closed: Callable[[], None],
    ) -> None:
        super().__init__(
            client,
            upstream,
            loop=loop,
            log=log,
            fields=fields,
            idle_timeout_s=idle_timeout_s,
            on_closed=on_closed,
        )
        self.relay = FrameRelay(settings, self.started, os.urandom)
        self._client_shut = False
        self._backend_shut = False
        self._relay_timer: asyncio.TimerHandle | None = None
        self._relay_at: float | None = None

    def start(self, from_upstream: bytes, from_client: bytes) -> None:
        super().start(from_upstream, from_client)
        if not self.closed:
            self._arm(self.relay.next_deadline())

    # -- bytes ------------------------------------------------------------------------------
    def from_client(self, data: bytes) -> None:
        now = self.loop.time()
        self.bytes_up += len(data)
        relay = self.relay
        relay.from_client(data, now)
        out = relay.to_backend
        if out:
            # Only what is forwarded is activity: a swallowed keepalive pong is not.
            self.last_activity = now
            write = self.upstream.write
            for piece in out:
                write(piece)
            out.clear()
        if relay.to_client or relay.dirty:
            self._carry_out()

    def on_upstream_tunnel_data(self, data: bytes) -> None:
        now = self.loop.time()
        self.bytes_down += len(data)
        relay = self.relay
        relay.from_backend(data, now)
        out = relay.to_client
        if out:
            self.last_activity = now
            write = self.client.write
            for piece in out:
                write(piece)
            out.clear()
        if relay.to_backend or relay.dirty:
            self._carry_out()

    def _carry_out(self) -> None:
        """Write what the relay has for each side, then shut what it says, in that order."""
        relay = self.relay
        out = relay.to_client
        if out:
            if not self._client_shut:
                for piece in out:
                    self.client.write(piece)
            out.clear()
        out = relay.to_backend
        if out:
            if not self._backend_shut:
                for piece in out:
                    self.upstream.write(piece)
            out.clear()
        if not relay.dirty or self.closed:
            return
        relay.dirty = False
        client, backend = relay.client, relay.backend
        if client.shut and not self._client_shut:
            self._client_shut = True
            if client.dead:
                self.client.abort()
            else:
                self.client.close()
        if backend.shut and not self._backend_shut:
            self._backend_shut = True
            if backend.dead:
                self.upstream.abort()
            else:
                self.upstream.close()
        if relay.finished:
            self._end()
        else:
            self._arm(relay.next_deadline())

    def _end(self) -> None:
        ending = self.relay.ending
        if ending is None:
            self._finish("closed", close_client=True)
            return
        extra: dict[str, object] = {"detail": ending.detail}
        if ending.fault is not None:
            extra["fault"] = ending.fault.value
        sent = {
            name: peer.close_frames[0]
            for name, peer in (("client", self.relay.client), ("backend", self.relay.backend))
            if peer.close_frames
        }
        if sent:
            extra["close_sent"] = sent
        self._finish(ending.cause, close_client=True, **extra)

    # -- time -------------------------------------------------------------------------------
    def _arm(self, at: float | None) -> None:
        if at == self._relay_at:
            return
        if self._relay_timer is not None:
            self._relay_timer.cancel()
            self._relay_timer = None
        self._relay_at = at
        if at is not None:
            self._relay_timer = self.loop.call_at(at, self._on_relay_timer)

    def _on_relay_timer(self) -> None:
        self._relay_timer = None
        self._relay_at = None
        if not self.closed:
            self.relay.timer(self.loop.time())
            self._carry_out()

    # -- ends and pauses --------------------------------------------------------------------
    def close(self, code: int, text: str, *, reason: str) -> None:
        if self.closed:
            return
        self.relay.close(code, text, reason, self.loop.time())
        self._carry_out()

    def _broken(self, why: str) -> None:
        self.relay.broken(why, self.loop.time())
        self._carry_out()

    def _backend_sent_close(self) -> bool:
        return self.relay.backend.close_received

    def _gone(self, side: Side) -> bool:
        """A side's connection ended while the gateway closes: note it, and say so."""
        if self.closed or not self.relay.gone(side, self.loop.time()):
            return False
        if side is Side.CLIENT:
            self._client_shut = True
        else:
            self._backend_shut = True
        self._carry_out()
        return True

    def on_client_eof(self) -> bool | None:
        if self._gone(Side.CLIENT):
            return None
        # The half-close is passed on: no keepalive ping may be written after it.
        self.relay.eof(Side.CLIENT)
        return super().on_client_eof()

    def on_client_lost(self) -> None:
        if not self._gone(Side.CLIENT):
            super().on_client_lost()

    def on_upstream_eof(self) -> None:
        if self._gone(Side.BACKEND):
            self.upstream_eof = True
            return
        super().on_upstream_eof()

    def on_upstream_lost(self, exc: Exception | None) -> None:
        if not self._gone(Side.BACKEND):
            super().on_upstream_lost(exc)

    def on_upstream_pause_writing(self) -> None:
        super().on_upstream_pause_writing()
        self._pause(Side.CLIENT, True)

    def on_upstream_resume_writing(self) -> None:
        super().on_upstream_resume_writing()
        self._pause(Side.CLIENT, False)

    def on_backend_reading(self, on: bool) -> None:
        self._pause(Side.BACKEND, not on)

    def _pause(self, side: Side, paused: bool) -> None:
        # Called from inside a transport's write (pause_writing comes synchronously), while
        # the relay's output is being written: so nothing is written here, only the timer
        # moved.
        if not self.closed:
            relay = self.relay
            relay.pause(side, paused, self.loop.time())
            self._arm(relay.next_deadline())

    def _finish(self, reason: str, *, close_client: bool = False, **extra: object) -> None:
        if self._relay_timer is not None:
            self._relay_timer.cancel()
            self._relay_timer = None
            self._relay_at = None
        super()._finish(reason, close_client=close_client, **extra)
