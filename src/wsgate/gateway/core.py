"""The client connection as a pure state machine: events in, commands out.

`ClientCore` takes the client's bytes (through its `RequestReader`), the upstream's
events and the clock (`now` with every call), decides, and returns commands for its
asyncio adapter (`client.py`) to carry out. It imports no asyncio, socket or clock, so a
test drives it with literal bytes and a number for time (tests/gateway/test_core.py).

The core owns the connection: the deadlines, the gateway's error answers and the
connection's end. What the reader finds, the pipelined requests and the reading paused
are its `ClientSide` base's (client_side.py). What a request's turn brings before any
backend (a refusal, the client script) is dispatch.py's; the active request's trip to a
backend and back is its `Exchange` (exchange.py). The state tables of all three are in
`states.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsgate.gateway.answers import error_answer, error_fields
from wsgate.gateway.client_side import ClientSide
from wsgate.gateway.commands import (
    CallSoon,
    CloseClient,
    CloseTunnel,
    Command,
    Log,
    SendToClient,
    Wakeup,
)
from wsgate.gateway.dispatch import answer_here
from wsgate.gateway.exchange import Exchange, tunnel_start
from wsgate.gateway.ports import GatewayView
from wsgate.gateway.states import PHASE_MOVES, BadTransitionError, Phase, Reader, Request, Stage
from wsgate.policy.buckets import jittered_retry_after
from wsgate.protocol.frames import CLOSE_GOING_AWAY

if TYPE_CHECKING:
    from wsgate.gateway.pool import Backend, Waiter

BEFORE_THE_101 = (Stage.WAITING, Stage.FORWARDED)
ANSWER_OWED = (Stage.WAITING, Stage.FORWARDED, Stage.RESPONDING)


class ClientCore(ClientSide):
    # The reader, the requests, the pauses and the client's deadlines: ClientSide's slots.
    __slots__ = (
        "_client_counted",
        "_tunnel_backend",
        "_wakeup_at",
        "client_ip",
        "scheme",
        "waiter",
    )

    def __init__(
        self, gw: GatewayView, client_ip: str, waiter: Waiter, scheme: str = "http"
    ) -> None:
        super().__init__(gw)
        self.client_ip = client_ip
        self.scheme = scheme  # the listener's: "https" when it terminates TLS
        self.waiter = waiter  # what the pool calls back (the adapter)
        self._wakeup_at: float | None = None
        self._client_counted: str | None = None  # counted by the per-client limits
        self._tunnel_backend: Backend | None = None  # counted as a tunnel on it

    # == plumbing =========================================================================
    def done(self) -> list[Command]:
        """The commands of this call, with the wakeup for the nearest deadline."""
        at = self.header_deadline
        for deadline in (
            self.keepalive_deadline,
            self.body_deadline,
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

    @property
    def idle(self) -> bool:
        """Between requests on a keep-alive connection: safe to close at shutdown."""
        return self.phase is Phase.IDLE and self.active is None and not self.queue

    # == ExchangeHost: what the exchange asks of the connection (fail, abort: below) =====
    def keep_alive_allowed(self) -> bool:
        """Whether this connection may stay open after the answer being relayed: not
        when the client half-closed (or was refused) and nothing else is owed, nor when
        the gateway drains."""
        stopped = self.reader.state is Reader.STOPPED and not self.queue
        return not stopped and not self.gw.draining

    def tunnel_opened(self, backend: Backend) -> None:
        self._tunnel_backend = backend

    def body_flowing(self) -> None:
        self.resume("body")

    def answered(self, request: Request) -> None:
        """The backend's answer to the active request is relayed in full."""
        self.active = None
        self.exchange = None
        # Draining: an answer begun before the drain closes its connection once done.
        if request.close_after or not request.complete or not self.keep_alive_allowed():
            self._close()
            return
        self._move(Phase.IDLE)
        if self.queue:
            self.commands.append(CallSoon())
        else:
            self.keepalive_deadline = self.now + self.gw.config.server.keepalive_timeout_s
        self.resume("body")

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
            self.header_deadline = now + self.gw.config.server.header_timeout_s
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
        if self.header_deadline is not None and now >= self.header_deadline:
            self.header_deadline = None
            if self.phase is Phase.IDLE and self.active is None:
                timeout = self.gw.config.server.header_timeout_s
                self.fail("header_timeout", f"The limit is {timeout:g} s.")
        if self.keepalive_deadline is not None and now >= self.keepalive_deadline:
            self.keepalive_deadline = None
            self._close()
        if self.body_deadline is not None and now >= self.body_deadline:
            self.body_deadline = None
            self.body_timeout(now)
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
        self.start_next()
        return self.done()

    def start_next(self) -> None:
        """Route the next request and send it on its way to a backend."""
        if self.active is not None or not self.queue or self.phase is not Phase.IDLE:
            return
        request = self.queue.pop(0)
        self.resume("pipeline")
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
            self.pause("upstream_full")
        else:
            self.resume("upstream_full")

    def switch_to_tunnel(self, tail: bytes) -> None:
        """The backend's bytes after its 101 came: hand the connection to a tunnel."""
        exchange = self.exchange
        if exchange is None or exchange.stage is not Stage.UPGRADING or not exchange.has_upstream:
            return
        exchange.switch()
        self._move(Phase.TUNNEL)
        self.reader.stop()
        early, self.reader.held = self.reader.held, b""
        self.resume("upgrade")
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
        self.header_deadline = None
        self.keepalive_deadline = None
        self.body_deadline = None
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
