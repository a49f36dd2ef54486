"""The client's side of a connection, pure: what its `RequestReader` finds (this class is
the reader's `RequestSink`), the line of pipelined requests, reading paused and resumed,
and the client's deadlines (header, keep-alive, body).

`ClientCore` (core.py) is a `ClientSide`: it adds the events, the exchange and the end of
the connection, and gives the three steps this side hands on: `start_next`, `fail` and
`abort`. A base class and not an object beside the core, because the reader calls these
on every request: one object, no second hop, and no import circle (this module cannot
name `ClientCore`, which makes the reader). upstream_side.py is the other side.
"""

from __future__ import annotations

from wsgate.gateway.commands import ClientReading, Command
from wsgate.gateway.dispatch import stand_in
from wsgate.gateway.exchange import Exchange
from wsgate.gateway.ports import GatewayView
from wsgate.gateway.reader import RequestReader
from wsgate.gateway.states import Phase, Request, Stage
from wsgate.protocol.errors import ProtocolError

MAX_PIPELINED_REQUESTS = 16


class ClientSide:
    __slots__ = (
        "active",
        "body_deadline",
        "commands",
        "exchange",
        "gw",
        "header_deadline",
        "keepalive_deadline",
        "now",
        "paused",
        "phase",
        "queue",
        "reader",
    )

    def __init__(self, gw: GatewayView) -> None:
        self.gw = gw
        server = gw.config.server
        self.reader = RequestReader(
            self, max_head=server.max_header_bytes, proxy_protocol=server.proxy_protocol
        )
        self.phase = Phase.IDLE
        self.active: Request | None = None  # the request being answered
        self.exchange: Exchange | None = None  # its trip to a backend
        self.queue: list[Request] = []  # pipelined requests: at most MAX_PIPELINED_REQUESTS
        # One list for the core's whole life: the exchange appends to it too.
        self.commands: list[Command] = []
        self.paused: set[str] = set()  # why reading is paused; read while empty
        self.header_deadline: float | None = None
        self.keepalive_deadline: float | None = None
        self.body_deadline: float | None = None
        self.now = 0.0

    # == the steps that are the core's (core.py) ==========================================
    def start_next(self) -> None:
        """Take the next pipelined request, if the connection is free for it."""
        raise NotImplementedError

    def fail(self, cause: str, detail: str, *, retry_after_s: int | None = None) -> None:
        """Answer with an explained error, then close."""
        raise NotImplementedError

    def abort(self) -> None:
        """Close at once, without an answer."""
        raise NotImplementedError

    # == reading paused and resumed: one reason or more ===================================
    def pause(self, reason: str) -> None:
        if not self.paused:
            self.commands.append(ClientReading(False))
        self.paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason in self.paused:
            self.paused.discard(reason)
            if not self.paused:
                self.commands.append(ClientReading(True))

    # == RequestSink: what the reader found ================================================
    def on_head_begin(self) -> None:
        if self.keepalive_deadline is not None and self.active is None and not self.queue:
            # A keep-alive connection woke up: the header timeout starts now.
            self.keepalive_deadline = None
            self.header_deadline = self.now + self.gw.config.server.header_timeout_s

    def on_request(self, request: Request) -> None:
        if self.active is None and not self.queue:
            self.header_deadline = None
            self.keepalive_deadline = None
        if self.reader.reading_body:
            self.body_deadline = self.now + self.gw.config.server.body_timeout_s
        self.queue.append(request)
        if len(self.queue) >= MAX_PIPELINED_REQUESTS:
            self.pause("pipeline")
        if self.active is None:
            self.start_next()

    def on_body(self, request: Request, data: bytes) -> None:
        exchange = self.exchange
        if exchange is not None and request is self.active and exchange.streaming_body:
            exchange.send_body(data)
            return
        request.body.append(data)
        request.buffered += len(data)
        if request.buffered > self.gw.config.server.tunnel_high_water_bytes:
            self.pause("body")

    def on_request_complete(self, request: Request) -> None:
        self.body_deadline = None
        if request is self.active and self.exchange is not None:
            self.exchange.request_complete()

    def on_refused(self, request: Request | None, cause: str, detail: str) -> None:
        """A request broke the rules: answered in its turn, after the requests before it,
        then the connection closes."""
        self.body_deadline = None
        self.pause("refused")
        error = ProtocolError(cause, detail)
        if request is None:
            # The failure is in a head: a stand-in request takes that head's turn.
            request = stand_in(error, self.now)
            self.queue.append(request)
        elif request is self.active:
            # Its head may be with a backend already, which waits for the rest: not the
            # backend's failure, so the slot is released as aborted.
            if self.exchange is not None and self.exchange.stage is Stage.RESPONDING:
                self.abort()
            else:
                self.fail(cause, detail)
            return
        else:
            request.error = error
        request.complete = True
        self.start_next()

    def on_held(self, size: int) -> None:
        # Reading goes on while a handshake waits, so that a client who gives up (closes)
        # is noticed and leaves the queue; only one that sends a lot before its 101 pauses.
        if size > self.gw.config.server.tunnel_high_water_bytes:
            self.pause("upgrade")

    # == the body deadline (the core's timer calls this when it is due) ===================
    def body_timeout(self, now: float) -> None:
        """No body bytes for body_timeout_s: the client stalled. Time spent paused by the
        gateway itself (backpressure, a full pipeline) does not count."""
        if not self.reader.reading_body or self.phase is Phase.CLOSED:
            return
        timeout = self.gw.config.server.body_timeout_s
        if self.paused:
            self.reader.body_at = now
        deadline = self.reader.body_at + timeout
        if deadline > now:
            self.body_deadline = deadline
            return
        self.reader.refuse("body_timeout", f"No body bytes arrived for {timeout:g} s.")
