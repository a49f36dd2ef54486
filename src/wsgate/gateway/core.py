"""The client connection as a pure state machine: events in, commands out.

`ClientCore` takes the client's bytes (through its `RequestReader`), the upstream's
events and the clock (`now` with every call), decides, and returns commands for its
asyncio adapter (`client.py`) to carry out. It imports no asyncio, socket or clock, so a
test drives it with literal bytes and a number for time (tests/gateway/test_core.py).

The core owns the connection: the reader, the pipelined requests, the deadlines, the
gateway's error answers and the connection's end. What a request's turn brings before
any backend (a refusal, the client script) is dispatch.py's; the active request's trip
to a backend and back is its `Exchange` (exchange.py). The state tables of all three are
in `states.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsgate.gateway.answers import error_answer, error_fields
from wsgate.gateway.commands import (
    CallSoon,
    ClientReading,
    CloseClient,
    CloseTunnel,
    Command,
    Log,
    SendToClient,
    Wakeup,
)
from wsgate.gateway.dispatch import answer_here, stand_in
from wsgate.gateway.exchange import Exchange, tunnel_start
from wsgate.gateway.ports import GatewayView
from wsgate.gateway.reader import RequestReader
from wsgate.gateway.states import (
    PHASE_MOVES,
    BadTransitionError,
    Phase,
    Reader,
    Request,
    Stage,
)
from wsgate.policy.buckets import jittered_retry_after
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.frames import CLOSE_GOING_AWAY

if TYPE_CHECKING:
    from wsgate.gateway.pool import Backend, Waiter

MAX_PIPELINED_REQUESTS = 16
BEFORE_THE_101 = (Stage.WAITING, Stage.FORWARDED)
ANSWER_OWED = (Stage.WAITING, Stage.FORWARDED, Stage.RESPONDING)


class ClientCore:
    __slots__ = (
        "_body_deadline",
        "_client_counted",
        "_header_deadline",
        "_keepalive_deadline",
        "_paused",
        "_queue",
        "_tunnel_backend",
        "_wakeup_at",
        "active",
        "client_ip",
        "commands",
        "exchange",
        "gw",
        "now",
        "phase",
        "reader",
        "scheme",
        "waiter",
    )

    def __init__(
        self, gw: GatewayView, client_ip: str, waiter: Waiter, scheme: str = "http"
    ) -> None:
        self.gw = gw
        self.client_ip = client_ip
        self.scheme = scheme  # the listener's: "https" when it terminates TLS
        self.waiter = waiter  # what the pool calls back (the adapter)
        server = gw.config.server
        self.reader = RequestReader(
            self, max_head=server.max_header_bytes, proxy_protocol=server.proxy_protocol
        )
        self.phase = Phase.IDLE
        self.active: Request | None = None  # the request being answered
        self.exchange: Exchange | None = None  # its trip to a backend
        self._queue: list[Request] = []  # pipelined requests: at most MAX_PIPELINED_REQUESTS
        # One list for the core's whole life: the exchange appends to it too.
        self.commands: list[Command] = []
        self._paused: set[str] = set()
        self._header_deadline: float | None = None
        self._keepalive_deadline: float | None = None
        self._body_deadline: float | None = None
        self._wakeup_at: float | None = None
        self._client_counted: str | None = None  # counted by the per-client limits
        self._tunnel_backend: Backend | None = None  # counted as a tunnel on it
        self.now = 0.0

    # == plumbing =========================================================================
    def done(self) -> list[Command]:
        """The commands of this call, with the wakeup for the nearest deadline."""
        at = self._header_deadline
        for deadline in (
            self._keepalive_deadline,
            self._body_deadline,
            self.exchange.response_deadline if self.exchange is not None else None,
        ):
            if deadline is not None and (at is None or deadline < at):
                at = deadline
        out = self.commands
        if at != self._wakeup_at:
            self._wakeup_at = at
            out.append(Wakeup(at))
        done = out[:]  # a copy handed out, the list emptied for the next call
        out.clear()
        return done

    def _move(self, new: Phase) -> None:
        if new is not self.phase:
            if new not in PHASE_MOVES[self.phase]:
                raise BadTransitionError(f"client {self.phase.name} -> {new.name}")
            self.phase = new

    def _pause(self, reason: str) -> None:
        if not self._paused:
            self.commands.append(ClientReading(False))
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self._paused:
            self._paused.discard(reason)
            if not self._paused:
                self.commands.append(ClientReading(True))

    @property
    def idle(self) -> bool:
        """Between requests on a keep-alive connection: safe to close at shutdown."""
        return self.phase is Phase.IDLE and self.active is None and not self._queue

    # == ExchangeHost: what the exchange asks of the connection (fail, abort: below) =====
    def keep_alive_allowed(self) -> bool:
        """Whether this connection may stay open after the answer being relayed: not
        when the client half-closed (or was refused) and nothing else is owed, nor when
        the gateway drains."""
        stopped = self.reader.state is Reader.STOPPED and not self._queue
        return not stopped and not self.gw.draining

    def tunnel_opened(self, backend: Backend) -> None:
        self._tunnel_backend = backend

    def body_flowing(self) -> None:
        self._resume("body")

    def answered(self, request: Request) -> None:
        """The backend's answer to the active request is relayed in full."""
        self.active = None
        self.exchange = None
        # Draining: an answer begun before the drain closes its connection once done.
        if request.close_after or not request.complete or not self.keep_alive_allowed():
            self._close()
            return
        self._move(Phase.IDLE)
        if self._queue:
            self.commands.append(CallSoon())
        else:
            self._keepalive_deadline = self.now + self.gw.config.server.keepalive_timeout_s
        self._resume("body")

    # == events: the client ===============================================================
    def start(self, now: float, *, over_capacity: bool) -> list[Command]:
        """The connection is accepted."""
        self.now = now
        if over_capacity:
            limit = self.gw.config.server.max_connections
            self.fail(
                "at_capacity",
                f"The gateway holds {limit} connections.",
                retry_after_s=jittered_retry_after(5.0, self.gw.rng),
            )
        else:
            self._header_deadline = now + self.gw.config.server.header_timeout_s
        return self.done()

    def client_data(self, data: bytes, now: float) -> list[Command]:
        self.now = now
        if self.phase is not Phase.CLOSED:
            address = self.reader.feed(data, now)
            if address is not None:
                self.client_ip = address
        return self.done()

    def client_eof(self, now: float) -> tuple[list[Command], bool]:
        """The client half-closed. Returns the commands and whether to keep the
        connection open for the answers still owed."""
        self.now = now
        active, stage = self.active, self.exchange.stage if self.exchange else None
        keep = False
        if active is not None and active.ws_key is not None and stage in BEFORE_THE_101:
            # A WebSocket client that closes before its 101 has given up: free its place
            # in line or its handshake slot instead of a handshake for nobody.
            self._close()
        elif active is not None and active.complete and stage in ANSWER_OWED:
            self.reader.stop()  # a half-closed client still gets its answers
            keep = True
        else:
            self._close()
        return self.done(), keep

    def client_lost(self, now: float) -> list[Command]:
        self.now = now
        self.phase = Phase.CLOSED  # from any phase: the socket is gone
        self._end()
        if self.exchange is not None:
            self.exchange.drop_upstream(abort=True)
        return self.done()

    def timer(self, now: float) -> list[Command]:
        self.now = now
        self._wakeup_at = None
        if self._header_deadline is not None and now >= self._header_deadline:
            self._header_deadline = None
            if self.phase is Phase.IDLE and self.active is None:
                timeout = self.gw.config.server.header_timeout_s
                self.fail("header_timeout", f"The limit is {timeout:g} s.")
        if self._keepalive_deadline is not None and now >= self._keepalive_deadline:
            self._keepalive_deadline = None
            self._close()
        if self._body_deadline is not None and now >= self._body_deadline:
            self._body_deadline = None
            self._body_timeout(now)
        exchange = self.exchange
        deadline = exchange.response_deadline if exchange is not None else None
        if exchange is not None and deadline is not None and now >= deadline:
            exchange.response_timeout()
        return self.done()

    def close(self, code: int, text: str, *, reason: str, now: float) -> list[Command]:
        """End this connection from the gateway's side (drain): a tunnel gets a close
        frame with `code`; anything else is simply closed."""
        self.now = now
        if self.phase is Phase.TUNNEL:
            self.commands.append(CloseTunnel(code, text, reason))
        elif self.phase is not Phase.CLOSED:
            self._close()
        return self.done()

    def proceed(self, now: float) -> list[Command]:
        """The adapter's deferred call (after `CallSoon`): take the next pipelined request."""
        self.now = now
        self._start_next()
        return self.done()

    # == RequestSink: what the reader found ================================================
    def on_head_begin(self) -> None:
        if self._keepalive_deadline is not None and self.active is None and not self._queue:
            # A keep-alive connection woke up: the header timeout starts now.
            self._keepalive_deadline = None
            self._header_deadline = self.now + self.gw.config.server.header_timeout_s

    def on_request(self, request: Request) -> None:
        if self.active is None and not self._queue:
            self._header_deadline = None
            self._keepalive_deadline = None
        if self.reader.reading_body:
            self._body_deadline = self.now + self.gw.config.server.body_timeout_s
        self._queue.append(request)
        if len(self._queue) >= MAX_PIPELINED_REQUESTS:
            self._pause("pipeline")
        if self.active is None:
            self._start_next()

    def on_body(self, request: Request, data: bytes) -> None:
        exchange = self.exchange
        if exchange is not None and request is self.active and exchange.streaming_body:
            exchange.send_body(data)
            return
        request.body.append(data)
        request.buffered += len(data)
        if request.buffered > self.gw.config.server.tunnel_high_water_bytes:
            self._pause("body")

    def on_request_complete(self, request: Request) -> None:
        self._body_deadline = None
        if request is self.active and self.exchange is not None:
            self.exchange.request_complete()

    def on_refused(self, request: Request | None, cause: str, detail: str) -> None:
        """A request broke the rules: answered in its turn, after the requests before it,
        then the connection closes."""
        self._body_deadline = None
        self._pause("refused")
        error = ProtocolError(cause, detail)
        if request is None:
            # The failure is in a head: a stand-in request takes that head's turn.
            request = stand_in(error, self.now)
            self._queue.append(request)
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
        self._start_next()

    def on_held(self, size: int) -> None:
        # Reading goes on while a handshake waits, so that a client who gives up (closes)
        # is noticed and leaves the queue; only one that sends a lot before its 101 pauses.
        if size > self.gw.config.server.tunnel_high_water_bytes:
            self._pause("upgrade")

    def _body_timeout(self, now: float) -> None:
        """No body bytes for body_timeout_s: the client stalled. Time spent paused by the
        gateway itself (backpressure, a full pipeline) does not count."""
        if not self.reader.reading_body or self.phase is Phase.CLOSED:
            return
        timeout = self.gw.config.server.body_timeout_s
        if self._paused:
            self.reader.body_at = now
        deadline = self.reader.body_at + timeout
        if deadline > now:
            self._body_deadline = deadline
            return
        self.reader.refuse("body_timeout", f"No body bytes arrived for {timeout:g} s.")

    def _start_next(self) -> None:
        """Route the next request and send it on its way to a backend."""
        if self.active is not None or not self._queue or self.phase is not Phase.IDLE:
            return
        request = self._queue.pop(0)
        self._resume("pipeline")
        self.active = request
        self.exchange = None
        self._move(Phase.BUSY)
        if answer_here(self, request):  # refused, or the client script (dispatch.py)
            return
        if request.ws_key is not None:
            self._client_counted = request.client
        self.exchange = Exchange(self, request)
        self.exchange.begin()

    # == the upstream side's turning points (upstream_side.py delivers its events) ========
    def flush(self) -> list[Command]:
        """This call's commands without the deadline check: for the per-chunk events."""
        done = self.commands[:]
        self.commands.clear()
        return done

    def pause_for_upstream(self, paused: bool) -> None:
        if paused:
            self._pause("upstream_full")
        else:
            self._resume("upstream_full")

    def switch_to_tunnel(self, tail: bytes) -> None:
        """The backend's bytes after its 101 came: hand the connection to a tunnel."""
        exchange = self.exchange
        if exchange is None or exchange.stage is not Stage.UPGRADING or not exchange.has_upstream:
            return
        exchange.switch()
        self._move(Phase.TUNNEL)
        self.reader.stop()
        early, self.reader.held = self.reader.held, b""
        self._resume("upgrade")
        # The tunnel takes the counts over and gives them back when it ends: the adapter
        # drops this core, so that a long-lived idle tunnel carries none of the request.
        backend, self._tunnel_backend = self._tunnel_backend, None
        client, self._client_counted = self._client_counted, None
        self.commands.append(tunnel_start(exchange.request, tail, early, backend, client))
        self.active = None
        self.exchange = None

    # == errors and endings ===============================================================
    def _end(self) -> None:
        """Give back what this connection holds in pools and limits; safe to call twice."""
        self._header_deadline = None
        self._keepalive_deadline = None
        self._body_deadline = None
        exchange = self.exchange
        if exchange is not None:
            exchange.release()
            exchange.end()
        backend, self._tunnel_backend = self._tunnel_backend, None
        if backend is not None:
            backend.pool.tunnel_closed(backend)
        client, self._client_counted = self._client_counted, None
        if client is not None:
            self.gw.client_limits.release(client)

    def fail(self, cause: str, detail: str, *, retry_after_s: int | None = None) -> None:
        """Answer with an explained error when nothing of an answer was sent; then close."""
        request = self.active
        self.commands.append(
            Log("error", cause, error_fields(request, self.client_ip, detail, self.now))
        )
        exchange = self.exchange
        if self.phase in (Phase.IDLE, Phase.BUSY) and (
            exchange is None or not exchange.answer_started
        ):
            answer = request.overload_answer if request is not None else "http"
            self.commands.append(
                SendToClient(error_answer(request, cause, detail, retry_after_s, answer))
            )
        if exchange is not None:
            exchange.drop_upstream(abort=True)
        self._close()

    def _close(self) -> None:
        if self.phase is Phase.TUNNEL:
            self.commands.append(CloseTunnel(CLOSE_GOING_AWAY, "", "closed"))
            return
        if self.phase is Phase.CLOSED:
            return
        self._move(Phase.CLOSED)
        self._end()
        self.commands.append(CloseClient())
        if self.exchange is not None:
            self.exchange.drop_upstream(abort=False)

    def abort(self) -> None:
        self.phase = Phase.CLOSED  # from any phase: the exchange cannot be completed
        self._end()
        self.commands.append(CloseClient(abort=True))
        if self.exchange is not None:
            self.exchange.drop_upstream(abort=True)
