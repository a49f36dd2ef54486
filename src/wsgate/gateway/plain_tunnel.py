"""The plain tunnel: the two byte streams of a WebSocket after its 101, copied as they
come, with backpressure, half-close and an explained end; also the base that the
frame-aware tunnel (frame_tunnel.py) builds on.

Bytes are never parsed, except that the backend-to-client direction goes through a
`FrameTracker` (frame headers only), so that when the backend breaks the tunnel the client
gets close code 1014 at a frame boundary, and when the gateway ends it (idle timeout,
shutdown) 1001.

Backpressure: each transport's write buffer has a high-water mark; when the client's is
reached, the upstream's reading pauses (and the other way round), so a side that stops
reading holds back the side that sends instead of growing a buffer here.

Closing from the gateway's side follows RFC 6455 section 7.1.1: the close frame first,
then the peer's answer, then TCP. The plain tunnel, which does not follow the client's
frames, half-closes after its close frame and waits for the client's EOF; the frame-aware
one waits for the peer's close frame itself. Either wait is bounded (`CLOSE_TIMEOUT_S`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.log import JsonLog
from wsgate.protocol.frame_relay import (
    CLOSE_TIMEOUT_S,
    FRAME_TOO_BIG,
    MESSAGE_RATE_EXCEEDED,
    MESSAGE_TOO_BIG,
    PEER_PING_TIMEOUT,
    UPSTREAM_TUNNEL_BROKEN,
)
from wsgate.protocol.frames import CLOSE_BAD_GATEWAY, FrameTracker, close_frame

# After the backend ends a tunnel cleanly, how long the client gets to close its side.
CLOSE_GRACE_S = 10.0
# Ends logged as errors (with the cause as the line's name), the rest as `tunnel_end`.
ERROR_ENDS = frozenset(
    {
        UPSTREAM_TUNNEL_BROKEN,
        PEER_PING_TIMEOUT,
        MESSAGE_TOO_BIG,
        FRAME_TOO_BIG,
        MESSAGE_RATE_EXCEEDED,
    }
)


class Tunnel:
    """One tunnel: the client's transport and the upstream connection, bytes copied both
    ways, ended by either side or by the gateway (`close`), then logged once."""

    __slots__ = (
        "_closing",
        "_fields",
        "_idle_timeout_s",
        "_log",
        "_on_closed",
        "_timer",
        "bytes_down",
        "bytes_up",
        "client",
        "client_eof",
        "closed",
        "last_activity",
        "loop",
        "started",
        "tracker",
        "upstream",
        "upstream_eof",
    )

    def __init__(
        self,
        client: asyncio.Transport,
        upstream: UpstreamConnection,
        *,
        loop: asyncio.AbstractEventLoop,
        log: JsonLog,
        fields: dict[str, Any],
        idle_timeout_s: float,
        on_closed: Callable[[], None],
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.loop = loop
        self._log = log
        self._fields = fields
        self._idle_timeout_s = idle_timeout_s
        self._on_closed = on_closed
        self.tracker = FrameTracker()
        self.started = self.loop.time()
        self.last_activity = self.started
        self.bytes_up = 0
        self.bytes_down = 0
        self.client_eof = False
        self.upstream_eof = False
        self.closed = False
        # The gateway sent its close frame and waits for the client's EOF: (reason, fields).
        self._closing: tuple[str, dict[str, object]] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self, from_upstream: bytes, from_client: bytes) -> None:
        """Begin with the bytes that came right behind the 101 and the upgrade request."""
        self.upstream.start_tunnel(self)
        if from_upstream:
            self.on_upstream_tunnel_data(from_upstream)
        if from_client:
            self.from_client(from_client)
        if self._idle_timeout_s > 0 and not self.closed:
            self._timer = self.loop.call_later(self._idle_timeout_s, self._idle_check)

    # -- the client side (called by the client connection) -----------------------------------
    def from_client(self, data: bytes) -> None:
        if self._closing is not None and not self.client.can_write_eof():
            # TLS: no half-close told the client that we are done, so it waits for our
            # TCP close; what it sends now is its answer (the close frame): end here.
            self._finish_closing()
            return
        self.bytes_up += len(data)
        self.last_activity = self.loop.time()
        self.upstream.write(data)

    def on_client_eof(self) -> bool | None:
        """The client half-closed: pass it on; True keeps our write side open."""
        self.client_eof = True
        if self._closing is not None:
            self._finish_closing()
            return None
        transport = self.upstream.transport
        if self.upstream_eof or transport is None or self.upstream.closed:
            self._finish("closed", close_client=True)
            return None
        if transport.can_write_eof():
            transport.write_eof()
        return True

    def on_client_lost(self) -> None:
        if self._closing is not None:
            self._finish_closing()
        elif not self.closed:
            self._finish("client_closed")
        self.upstream.close()  # flushes what the client sent last

    def on_backend_reading(self, on: bool) -> None:
        """Reading from the backend paused (the client reads slowly) or resumed."""

    # -- the upstream side (TunnelSink: called by the upstream connection) -------------------
    def on_upstream_tunnel_data(self, data: bytes) -> None:
        self.bytes_down += len(data)
        self.last_activity = self.loop.time()
        self.tracker.feed(data)
        self.client.write(data)

    def on_upstream_eof(self) -> None:
        self.upstream_eof = True
        if self.closed or self._closing is not None:
            return
        if not self._backend_sent_close() and not self.client_eof:
            self._broken("backend closed the connection without a close frame")
        elif self.client_eof or not self.client.can_write_eof():
            # TLS cannot half-close: a backend closes TCP once both close frames have
            # passed, so the client has nothing left to say either.
            self._finish("closed", close_client=True)
        else:
            self.client.write_eof()
            self._set_timer(CLOSE_GRACE_S, lambda: self._finish("closed", close_client=True))

    def on_upstream_lost(self, exc: Exception | None) -> None:
        if self.closed or self._closing is not None:
            return
        if not self._backend_sent_close() and not self.client_eof:
            self._broken("backend connection lost" + (f": {exc}" if exc else ""))
        else:
            self._finish("closed", close_client=True)

    def on_upstream_pause_writing(self) -> None:
        self.client.pause_reading()

    def on_upstream_resume_writing(self) -> None:
        if not self.client.is_closing():
            self.client.resume_reading()

    def _backend_sent_close(self) -> bool:
        return self.tracker.close_seen

    # -- ends -------------------------------------------------------------------------------
    def close(self, code: int, text: str, *, reason: str) -> None:
        """End the tunnel from the gateway's side (idle timeout, shutdown): a close frame to
        the client when at a frame boundary, then TCP close on both sides."""
        if self.closed or self._closing is not None:
            return
        if self.tracker.close_seen:
            # The backend's close frame went to the client: theirs is the handshake.
            self._finish(reason, close_client=True, close_frame_sent=False)
        elif self.tracker.at_boundary:
            self.client.write(close_frame(code, text))
            self._await_client(reason, close_frame_sent=True)
        else:
            self._finish(reason, close_client=True, close_frame_sent=False)

    def _broken(self, why: str) -> None:
        if self.tracker.at_boundary:
            self.client.write(close_frame(CLOSE_BAD_GATEWAY, "bad gateway: " + why[:90]))
            self._await_client(UPSTREAM_TUNNEL_BROKEN, why=why, close_frame_sent=True)
        else:
            self._finish(UPSTREAM_TUNNEL_BROKEN, close_client=True, why=why, close_frame_sent=False)

    def _await_client(self, reason: str, **extra: object) -> None:
        """After the gateway's close frame: the backend is let go, the client's side is
        half-closed (what it still sends is read and dropped, so that closing cannot reset
        the connection over unread bytes), and the tunnel ends at the client's EOF, or
        after CLOSE_TIMEOUT_S."""
        self._closing = (reason, extra)
        self.upstream.close()
        if self.client.can_write_eof():
            self.client.write_eof()
        self._set_timer(CLOSE_TIMEOUT_S, self._finish_closing)

    def _finish_closing(self) -> None:
        if self._closing is not None:
            reason, extra = self._closing
            self._finish(reason, close_client=True, **extra)

    def _idle_check(self) -> None:
        self._timer = None
        quiet = self.loop.time() - self.last_activity
        if quiet < self._idle_timeout_s:
            self._set_timer(self._idle_timeout_s - quiet, self._idle_check)
            return
        self.close(1001, "idle timeout", reason="tunnel_idle_timeout")

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, callback)

    def _finish(self, reason: str, *, close_client: bool = False, **extra: object) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error = reason in ERROR_ENDS
        # A tunnel's end is its access line: `access_log = false` drops it, not errors.
        if error or self._log.access_enabled:
            record = {
                **self._fields,
                "end": reason,
                "duration_s": round(self.loop.time() - self.started, 3),
                "bytes_up": self.bytes_up,
                "bytes_down": self.bytes_down,
                **extra,
            }
            if error:
                self._log.error(reason, **record)
            else:
                self._log.event("tunnel_end", **record)
        if close_client:
            self.client.close()
            self.upstream.close()
        self._on_closed()
