"""The client connection as a pure state machine: events in, commands out.

`ClientCore` takes the client's bytes (through its `RequestReader`), the upstream's
events and the clock (`now` with every call), decides, and returns `commands` for its
asyncio adapter (`client.py`) to carry out. It imports no asyncio, socket or clock, so
a test drives it with literal bytes and a number for time (tests/gateway/test_core.py).

Its two state machines and their tables are in `states.py`. What the core asks of a
pool (a slot, a pick, the outcome of a handshake) are plain calls on the pool's policy
state; opening, writing and closing connections are commands. The order that matters
(count the tunnel before the slot frees; release the upstream before the next request
takes one) is the order of the lines below, in this one file.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from wsgate.config.model import Config
from wsgate.gateway.commands import (
    CallSoon,
    ClientReading,
    CloseClient,
    CloseTunnel,
    Command,
    Log,
    OpenUpstream,
    ReleaseUpstream,
    SendToClient,
    SendToUpstream,
    StartTunnel,
    Wakeup,
)
from wsgate.gateway.reader import RequestReader
from wsgate.gateway.responses import error_response
from wsgate.gateway.router import Router
from wsgate.gateway.states import PHASE_MOVES, BadTransitionError, Phase, Reader, Request, ms
from wsgate.policy.admission import Queued, Rejected
from wsgate.policy.buckets import jittered_retry_after
from wsgate.policy.clients import ClientLimits, client_address
from wsgate.policy.keys import hash_key
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.forward import (
    Framing,
    client_framing,
    forward_request_head,
    interim_head,
    response_framing,
    response_head,
    switching_protocols_head,
)
from wsgate.protocol.frames import CLOSE_GOING_AWAY
from wsgate.protocol.handshake import check_upgrade_response
from wsgate.protocol.headers import HeaderList, Headers, get_one

if TYPE_CHECKING:
    from wsgate.gateway.pool import Backend, Pool, Waiter

MAX_PIPELINED_REQUESTS = 16

# RFC 9110 section 9.2.2: requests that may be sent again without harm.
IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})

# Connect failures that are the gateway's own condition, not the backend's.
GATEWAY_OWN_CAUSES = frozenset({"out_of_file_descriptors"})


class GatewayView(Protocol):
    """What every client core of one gateway shares (server.Gateway provides it)."""

    @property
    def config(self) -> Config: ...
    @property
    def router(self) -> Router: ...
    @property
    def pools(self) -> Mapping[str, Pool]: ...
    @property
    def client_limits(self) -> ClientLimits: ...
    @property
    def trusted_proxies(self) -> Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def draining(self) -> bool: ...


def replayable(request: Request) -> bool:
    """Whether another backend may get this request: always if nothing was sent yet;
    after the head went out, only an idempotent request without a body (the body's bytes
    were streamed, not kept)."""
    if not request.head_sent:
        return True
    return request.framing is Framing.NONE and request.method in IDEMPOTENT_METHODS


class ClientCore:
    __slots__ = (
        "_body_deadline",
        "_client_counted",
        "_has_upstream",
        "_header_deadline",
        "_keepalive_deadline",
        "_out",
        "_paused",
        "_queue",
        "_response_deadline",
        "_tunnel_backend",
        "_wakeup_at",
        "active",
        "client_ip",
        "gw",
        "now",
        "phase",
        "reader",
        "waiter",
    )

    def __init__(self, gw: GatewayView, client_ip: str, waiter: Waiter) -> None:
        self.gw = gw
        self.client_ip = client_ip
        self.waiter = waiter  # what the pool calls back (the adapter)
        server = gw.config.server
        self.reader = RequestReader(
            self, max_head=server.max_header_bytes, proxy_protocol=server.proxy_protocol
        )
        self.phase = Phase.IDLE
        self.active: Request | None = None
        self._queue: list[Request] = []  # pipelined requests: at most MAX_PIPELINED_REQUESTS
        self._out: list[Command] = []
        self._paused: set[str] = set()
        self._has_upstream = False
        self._header_deadline: float | None = None
        self._keepalive_deadline: float | None = None
        self._body_deadline: float | None = None
        self._response_deadline: float | None = None
        self._wakeup_at: float | None = None
        self._client_counted: str | None = None  # counted by the per-client limits
        self._tunnel_backend: Backend | None = None  # counted as a tunnel on it
        self.now = 0.0

    # == plumbing =========================================================================
    def _done(self) -> list[Command]:
        """The commands of this call, with the wakeup for the nearest deadline."""
        at = None
        for deadline in (
            self._header_deadline,
            self._keepalive_deadline,
            self._body_deadline,
            self._response_deadline,
        ):
            if deadline is not None and (at is None or deadline < at):
                at = deadline
        if at != self._wakeup_at:
            self._wakeup_at = at
            self._out.append(Wakeup(at))
        out, self._out = self._out, []
        return out

    def _move(self, new: Phase) -> None:
        if new is not self.phase:
            if new not in PHASE_MOVES[self.phase]:
                raise BadTransitionError(f"client {self.phase.name} -> {new.name}")
            self.phase = new

    def _pause(self, reason: str) -> None:
        if not self._paused:
            self._out.append(ClientReading(False))
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self._paused:
            self._paused.discard(reason)
            if not self._paused:
                self._out.append(ClientReading(True))

    def _log(self, kind: str, name: str, **fields: Any) -> None:
        self._out.append(Log(kind, name, fields))

    @property
    def idle(self) -> bool:
        """Between requests on a keep-alive connection: safe to close at shutdown."""
        return self.phase is Phase.IDLE and self.active is None and not self._queue

    # == events: the client ===============================================================
    def start(self, now: float, *, over_capacity: bool) -> list[Command]:
        """The connection is accepted."""
        self.now = now
        if over_capacity:
            limit = self.gw.config.server.max_connections
            self._fail(
                "at_capacity",
                f"The gateway holds {limit} connections.",
                retry_after_s=jittered_retry_after(5.0, self.gw.rng),
            )
        else:
            self._header_deadline = now + self.gw.config.server.header_timeout_s
        return self._done()

    def client_data(self, data: bytes, now: float) -> list[Command]:
        self.now = now
        if self.phase is not Phase.CLOSED:
            address = self.reader.feed(data, now)
            if address is not None:
                self.client_ip = address
        return self._done()

    def client_eof(self, now: float) -> tuple[list[Command], bool]:
        """The client half-closed. Returns the commands and whether to keep the
        connection open for the answers still owed."""
        self.now = now
        active = self.active
        keep = False
        if (
            active is not None
            and active.ws_key is not None
            and self.phase
            in (
                Phase.WAITING,
                Phase.FORWARDED,
            )
        ):
            # A WebSocket client that closes before its 101 has given up: free its place
            # in line or its handshake slot instead of a handshake for nobody.
            self._close()
        elif (
            active is not None
            and active.complete
            and self.phase
            in (
                Phase.WAITING,
                Phase.FORWARDED,
                Phase.RESPONDING,
            )
        ):
            self.reader.stop()  # a half-closed client still gets its answers
            keep = True
        else:
            self._close()
        return self._done(), keep

    def client_lost(self, now: float) -> list[Command]:
        self.now = now
        was_tunnel = self.phase is Phase.TUNNEL
        self.phase = Phase.CLOSED  # from any phase: the socket is gone
        self._clear_deadlines()
        self._release_everything()
        if self._has_upstream and not was_tunnel:
            self._has_upstream = False
            self._out.append(ReleaseUpstream(abort=True))
        return self._done()

    def timer(self, now: float) -> list[Command]:
        self.now = now
        self._wakeup_at = None
        if self._header_deadline is not None and now >= self._header_deadline:
            self._header_deadline = None
            if self.phase is Phase.IDLE and self.active is None:
                timeout = self.gw.config.server.header_timeout_s
                self._fail("header_timeout", f"The limit is {timeout:g} s.")
        if self._keepalive_deadline is not None and now >= self._keepalive_deadline:
            self._keepalive_deadline = None
            self._close()
        if self._body_deadline is not None and now >= self._body_deadline:
            self._body_deadline = None
            self._body_timeout(now)
        if self._response_deadline is not None and now >= self._response_deadline:
            self._response_deadline = None
            self._response_timeout()
        return self._done()

    def close(self, code: int, text: str, *, reason: str, now: float) -> list[Command]:
        """End this connection from the gateway's side (drain): a tunnel gets a close
        frame with `code`; anything else is simply closed."""
        self.now = now
        if self.phase is Phase.TUNNEL:
            self._out.append(CloseTunnel(code, text, reason))
        elif self.phase is not Phase.CLOSED:
            self._close()
        return self._done()

    def proceed(self, now: float) -> list[Command]:
        """The adapter's deferred call (after `CallSoon`): take the next pipelined request."""
        self.now = now
        self._start_next()
        return self._done()

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
        if request is self.active and request.head_sent and self._has_upstream:
            self._send_body(request, data)
            return
        request.body.append(data)
        request.buffered += len(data)
        if request.buffered > self.gw.config.server.tunnel_high_water_bytes:
            self._pause("body")

    def on_request_complete(self, request: Request) -> None:
        self._body_deadline = None
        if request is self.active and request.head_sent and self._has_upstream:
            if request.framing is Framing.CHUNKED:
                self._out.append(SendToUpstream(b"0\r\n\r\n"))
            if self.phase is Phase.FORWARDED:
                self._start_response_timer(request)

    def on_refused(self, request: Request | None, cause: str, detail: str) -> None:
        """A request broke the rules: answered in its turn, after the requests before it,
        then the connection closes."""
        self._body_deadline = None
        self._pause("refused")
        error = ProtocolError(cause, detail)
        if request is None:
            # The failure is in a head: a stand-in request takes that head's turn.
            request = Request(
                method=b"",
                target=b"",
                version="1.1",
                headers=HeaderList(),
                keep_alive=False,
                framing=Framing.NONE,
                received_at=self.now,
                error=error,
            )
            self._queue.append(request)
        elif request is self.active:
            # Its head may be with a backend already, which waits for the rest: not the
            # backend's failure, so the slot is released as aborted.
            if self.phase is Phase.RESPONDING:
                self._abort()
            else:
                self._fail(cause, detail)
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

    # == the exchange: route, admit, forward ==============================================
    def _start_next(self) -> None:
        if self.active is not None or not self._queue or self.phase is not Phase.IDLE:
            return
        request = self._queue.pop(0)
        self._resume("pipeline")
        self.active = request
        if request.error is not None:
            self._fail(request.error.cause, request.error.reason)
            return
        if self.gw.draining:
            self._fail("shutting_down", "", retry_after_s=1)
            return
        host = get_one(request.headers, b"host")
        pool_name = self.gw.router.pool_for(host, request.target)
        if pool_name is None:
            shown = (host or b"").decode("latin-1")
            path = request.target.split(b"?", 1)[0].decode("latin-1")
            self._fail("no_route", f"Host {shown!r}, path {path!r}.")
            return
        pool = request.pool = self.gw.pools[pool_name]
        request.client = client_address(
            self.client_ip, get_one(request.headers, b"x-forwarded-for"), self.gw.trusted_proxies
        )
        self._move(Phase.WAITING)
        if request.ws_key is None:
            self._pick_for_request(request)
            return
        wait_s = self.gw.client_limits.admit(request.client, self.now)
        if wait_s is not None:
            self._fail(
                "client_rate_limited",
                f"Client {request.client} is over its connection or handshake limit.",
                retry_after_s=jittered_retry_after(wait_s, pool.rng),
            )
            return
        self._client_counted = request.client
        pool.budget.on_attempt(self.now)
        self._admit(request)

    def _admit(self, request: Request, *, front: bool = False) -> None:
        pool = request.pool
        assert pool is not None
        result = pool.admit(self.waiter, self.now, front=front)
        if isinstance(result, Rejected):
            self._reject(request, result.cause, result.detail, result.retry_after_s)
        elif isinstance(result, Queued):
            request.queued_at = self.now
        else:
            self._admitted(result)

    def admitted(self, backend: Backend, now: float) -> list[Command]:
        """A handshake slot on `backend` is ours, from the queue."""
        self.now = now
        self._admitted(backend)
        return self._done()

    def _admitted(self, backend: Backend) -> None:
        request = self.active
        if request is None or request.pool is None or self.phase is not Phase.WAITING:
            backend.pool.handshake_done(backend, 0.0, 0, "aborted")
            return
        request.slot = backend
        request.slot_since = self.now
        request.slot_inflight = backend.inflight
        self._use_backend(request, backend)

    def rejected(self, cause: str, detail: str, retry_after_s: int, now: float) -> list[Command]:
        """The pool will not give us a slot (queue timeout, no backend left, draining)."""
        self.now = now
        if self.active is not None and self.phase is Phase.WAITING:
            self._reject(self.active, cause, detail, retry_after_s)
        return self._done()

    def hash_key(self) -> bytes | None:
        request = self.active
        if request is None or request.pool is None:
            return None
        return hash_key(
            request.pool.config.hash_key, request.client, request.headers, request.target
        )

    def excluded(self) -> frozenset[Backend]:
        return frozenset(self.active.tried) if self.active is not None else frozenset()

    def _reject(self, request: Request, cause: str, detail: str, retry_after_s: int) -> None:
        failure = request.last_failure
        if cause == "no_healthy_upstream" and failure is not None and request.tried:
            # Retries ran out of backends: the last real failure explains it best.
            self._fail(*failure)
            return
        self._fail(cause, detail, retry_after_s=retry_after_s)

    def _pick_for_request(self, request: Request) -> None:
        pool = request.pool
        assert pool is not None
        backend = pool.pick_for_request(
            self.now,
            frozenset(request.tried),
            hash_key(pool.config.hash_key, request.client, request.headers, request.target),
        )
        if backend is None:
            self._reject(
                request,
                "no_healthy_upstream",
                f"Pool {pool.config.name}: no backend is up.",
                pool.retry_after(),
            )
            return
        self._use_backend(request, backend)

    def _use_backend(self, request: Request, backend: Backend) -> None:
        request.tried.add(backend)
        request.backend = backend
        self._out.append(
            OpenUpstream(
                backend,
                head_request=request.method == b"HEAD",
                head_limit=self.gw.config.server.max_response_header_bytes,
            )
        )

    def _release_slot(self, request: Request, outcome: str) -> None:
        backend, request.slot = request.slot, None
        if backend is not None:
            rtt = self.now - request.slot_since
            backend.pool.handshake_done(backend, rtt, request.slot_inflight, outcome)

    # == events: the upstream =============================================================
    def upstream_ready(self, connect_ms: float | None, now: float) -> list[Command]:
        """The connection `OpenUpstream` asked for is attached: forward the request."""
        self.now = now
        request = self.active
        if request is None or self.phase is not Phase.WAITING:
            self._out.append(ReleaseUpstream(reuse=True))
            if request is not None:
                self._release_slot(request, "aborted")
            return self._done()
        self._has_upstream = True
        if connect_ms is not None:
            request.connect_ms = connect_ms
        assert request.backend is not None
        self._move(Phase.FORWARDED)
        self._out.append(
            SendToUpstream(
                forward_request_head(
                    request.method,
                    request.target,
                    request.headers,
                    client_ip=self.client_ip,
                    scheme="http",
                    websocket=request.ws_key is not None,
                    framing=request.framing,
                    default_host=str(request.backend.address),
                )
            )
        )
        request.head_sent = True
        request.head_sent_at = now
        for part in request.body:
            self._send_body(request, part)
        request.body.clear()
        request.buffered = 0
        self._resume("body")
        if request.complete:
            if request.framing is Framing.CHUNKED:
                self._out.append(SendToUpstream(b"0\r\n\r\n"))
            self._start_response_timer(request)
        return self._done()

    def upstream_failed(self, cause: str, detail: str, now: float) -> list[Command]:
        """`OpenUpstream` could not connect."""
        self.now = now
        request = self.active
        if request is None or self.phase is not Phase.WAITING:
            if request is not None:
                self._release_slot(request, "aborted")
            return self._done()
        if cause in GATEWAY_OWN_CAUSES:
            # The gateway's own shortage says nothing of the backend (no ejection), and
            # another backend would fail the same way (no retry).
            self._release_slot(request, "aborted")
            assert request.pool is not None
            self._fail(cause, detail, retry_after_s=request.pool.retry_after())
            return self._done()
        outcome = "dropped" if cause == "upstream_connect_timeout" else "failed"
        self._retry_or_fail(request, cause, detail, outcome=outcome)
        return self._done()

    def _send_body(self, request: Request, body: bytes) -> None:
        if request.framing is Framing.CHUNKED:
            if body:
                self._out.append(SendToUpstream(b"%x\r\n" % len(body) + body + b"\r\n"))
        else:
            self._out.append(SendToUpstream(body))

    def _start_response_timer(self, request: Request) -> None:
        assert request.pool is not None
        self._response_deadline = self.now + request.pool.config.response_timeout_s

    def _response_timeout(self) -> None:
        request = self.active
        if self.phase is not Phase.FORWARDED or request is None:
            return
        assert request.pool is not None
        timeout = request.pool.config.response_timeout_s
        had_slot = request.slot is not None
        self._release_slot(request, "dropped")  # a slot's release counts the failure
        if request.backend is not None and not had_slot:
            request.backend.pool.note_failure(request.backend)
        backend = request.backend.name if request.backend else None
        self._fail(
            "upstream_handshake_timeout",
            f"Backend {backend} sent no response head within {timeout:g} s.",
        )

    def response_head(
        self,
        status: int,
        reason: bytes,
        version: str,
        headers: Headers,
        keep_alive: bool,
        now: float,
    ) -> list[Command]:
        self.now = now
        request = self.active
        if request is None or self.phase is not Phase.FORWARDED:
            return self._done()
        if status == 101:
            self._response_deadline = None
            # Count the tunnel before the slot frees: freeing it admits the next waiter,
            # which must see this connection in max_connections_per_backend.
            self._switching_protocols(request, reason, headers)
            self._release_slot(request, "ok")  # nothing left to release if that failed
            return self._done()
        if status < 200:
            if request.version == "1.1":
                self._out.append(SendToClient(interim_head(status, reason, headers)))
            return self._done()
        self._response_deadline = None
        pool = request.pool
        assert pool is not None
        if (
            request.ws_key is not None
            and status in pool.config.retry_on_status
            and self._can_retry(request)
        ):
            # A 5xx to a handshake before anything reached the client: try elsewhere.
            self._has_upstream = False
            self._out.append(ReleaseUpstream())
            self._retry_or_fail(
                request, "upstream_bad_response", f"Backend answered {status}.", outcome="failed"
            )
            return self._done()
        if request.slot is not None:
            self._release_slot(request, "ok")
        elif request.backend is not None and status < 500:
            request.backend.pool.note_success(request.backend)
        self._move(Phase.RESPONDING)
        request.status = status
        upstream_framing = response_framing(request.method, status, headers)
        framing = client_framing(upstream_framing, request.version)
        keep = (
            request.keep_alive
            and framing is not Framing.CLOSE
            # An upgrade request that was not switched: the client may have sent frames.
            and not request.upgrade
            and not (self.reader.state is Reader.STOPPED and not self._queue)
            and not self.gw.draining
        )
        request.close_after = not keep
        request.upstream_framing = upstream_framing
        request.framing_out = framing
        # A connection that carried an upgrade request (refused, since this is not a
        # 101) is never reused: the backend and the gateway may disagree on where that
        # request ended, and the next request on it would be read as its continuation.
        request.upstream_reusable = (
            keep_alive and upstream_framing is not Framing.CLOSE and not request.upgrade
        )
        self._out.append(
            SendToClient(
                response_head(
                    status,
                    reason,
                    headers,
                    framing=framing,
                    keep_alive=keep,
                    client_version=request.version,
                )
            )
        )
        return self._done()

    def response_body(self, data: bytes) -> list[Command]:
        request = self.active
        if request is None or self.phase is not Phase.RESPONDING:
            return []
        if request.framing_out is Framing.CHUNKED:
            if data:
                self._out.append(SendToClient(b"%x\r\n" % len(data)))
                self._out.append(SendToClient(data))
                self._out.append(SendToClient(b"\r\n"))
        else:
            self._out.append(SendToClient(data))
        out, self._out = self._out, []
        return out

    def response_complete(self, now: float) -> list[Command]:
        self.now = now
        request = self.active
        if request is None or self.phase is not Phase.RESPONDING:
            return self._done()
        if request.framing_out is Framing.CHUNKED:
            self._out.append(SendToClient(b"0\r\n\r\n"))
        self._has_upstream = False
        self._out.append(ReleaseUpstream(reuse=request.upstream_reusable and request.complete))
        self._log_access(request)
        self.active = None
        if (
            request.close_after
            or not request.complete
            or (self.reader.state is Reader.STOPPED and not self._queue)
        ):
            self._close()
            return self._done()
        self._move(Phase.IDLE)
        if self._queue:
            self._out.append(CallSoon())
        else:
            self._keepalive_deadline = now + self.gw.config.server.keepalive_timeout_s
        self._resume("body")
        return self._done()

    def upstream_upgrade(self, tail: bytes, now: float) -> list[Command]:
        """The backend's bytes after its 101: the tunnel starts with them."""
        self.now = now
        request = self.active
        if self.phase is not Phase.UPGRADING or request is None or not self._has_upstream:
            return self._done()
        assert request.pool is not None
        self._move(Phase.TUNNEL)
        self.reader.stop()
        early, self.reader.held = self.reader.held, b""
        self._out.append(
            StartTunnel(
                tail,
                early,
                {
                    "client": request.client,
                    "pool": request.pool.config.name,
                    "backend": request.backend.name if request.backend else None,
                },
                request.pool.config.tunnel_idle_timeout_s,
            )
        )
        self._resume("upgrade")
        # The heads are done with; a long-lived idle tunnel should not carry them.
        request.headers = HeaderList()
        return self._done()

    def tunnel_closed(self, now: float) -> list[Command]:
        self.now = now
        self.phase = Phase.CLOSED
        self._has_upstream = False
        self._clear_deadlines()
        self._release_everything()
        return self._done()

    def upstream_eof(self, now: float) -> list[Command]:
        # A body that runs to the end of the connection ends here; any other body was cut
        # short, and upstream_lost follows and aborts the client.
        request = self.active
        if (
            request is not None
            and self.phase is Phase.RESPONDING
            and request.upstream_framing is Framing.CLOSE
        ):
            request.upstream_reusable = False
            return self.response_complete(now)
        self.now = now
        return self._done()

    def upstream_lost(self, error: str, now: float) -> list[Command]:
        self.now = now
        request = self.active
        if self.phase is Phase.UPGRADING:
            self._abort()
            return self._done()
        if self.phase not in (Phase.FORWARDED, Phase.RESPONDING) or request is None:
            return self._done()
        self._has_upstream = False
        if self.phase is Phase.RESPONDING:
            self._abort()  # a truncated body: the client must not take it as complete
            return self._done()
        if (
            request.head_sent
            and not request.stale_retry_done
            and request.framing is Framing.NONE
            and request.connect_ms is None
            and request.method in IDEMPOTENT_METHODS
        ):
            # A reused keep-alive connection that the backend had just closed: retry once
            # on a fresh connection, as nothing reached the backend's application.
            request.stale_retry_done = True
            request.head_sent = False
            self._response_deadline = None
            assert request.backend is not None
            self._move(Phase.WAITING)
            self._out.append(
                OpenUpstream(
                    request.backend,
                    head_request=request.method == b"HEAD",
                    head_limit=self.gw.config.server.max_response_header_bytes,
                    fresh=True,
                )
            )
            return self._done()
        backend = request.backend.name if request.backend else None
        detail = f"Backend {backend} closed the connection" + (f" ({error})." if error else ".")
        self._response_deadline = None
        self._retry_or_fail(request, "upstream_closed_early", detail, outcome="failed")
        return self._done()

    def upstream_bad_response(self, reason: str, cause: str, now: float) -> list[Command]:
        self.now = now
        request = self.active
        if self.phase is Phase.RESPONDING:
            self._abort()
            return self._done()
        if request is None or self.phase is not Phase.FORWARDED:
            return self._done()
        self._response_deadline = None
        self._has_upstream = False
        backend = request.backend.name if request.backend else None
        detail = f"Backend {backend}: {reason}."
        if cause == "upstream_header_too_large":
            # Another try would bring the same head: the backend's fault, not retried.
            had_slot = request.slot is not None
            self._release_slot(request, "failed")  # a slot's release counts the failure
            if not had_slot and request.backend is not None:
                request.backend.pool.note_failure(request.backend)
            self._fail(cause, detail)
            return self._done()
        self._retry_or_fail(request, cause, detail, outcome="failed")
        return self._done()

    def upstream_write_paused(self, paused: bool) -> list[Command]:
        if paused:
            self._pause("upstream_full")
        else:
            self._resume("upstream_full")
        out, self._out = self._out, []
        return out

    # == retries and the tunnel ===========================================================
    def _can_retry(self, request: Request) -> bool:
        pool = request.pool
        if pool is None or request.attempts > pool.config.retries:
            return False
        return any(b not in request.tried and b.health.available(self.now) for b in pool.backends)

    def _retry_or_fail(self, request: Request, cause: str, detail: str, *, outcome: str) -> None:
        """A failure before anything reached the client: another backend, if the attempt
        count and the pool's retry budget allow, else the explained error."""
        request.last_failure = (cause, detail)
        if request.slot is not None:
            self._release_slot(request, outcome)
        elif request.backend is not None and outcome != "aborted":
            request.backend.pool.note_failure(request.backend)
        pool = request.pool
        assert pool is not None
        self._log(
            "event",
            "upstream_attempt",
            client=self.client_ip,
            pool=pool.config.name,
            backend=str(request.backend.address) if request.backend else None,
            attempt=request.attempts,
            cause=cause,
        )
        if (
            replayable(request)
            and request.attempts <= pool.config.retries
            and pool.budget.try_retry(self.now)
        ):
            request.attempts += 1
            request.head_sent = False
            request.connect_ms = None
            self._move(Phase.WAITING)
            if request.ws_key is not None:
                self._admit(request, front=True)
            else:
                self._pick_for_request(request)
            return
        self._fail(cause, detail)

    def _switching_protocols(self, request: Request, reason: bytes, headers: Headers) -> None:
        if request.ws_key is None:
            self._fail("upstream_bad_response", "Backend answered 101 to a plain request.")
            return
        try:
            check_upgrade_response(request.ws_key, headers)
        except ProtocolError as exc:
            backend = request.backend.name if request.backend else None
            self._release_slot(request, "failed")  # a wrong Accept is the backend's fault
            self._fail(exc.cause, f"Backend {backend}: {exc.reason}.")
            return
        if request.backend is not None:
            self._tunnel_backend = request.backend
            request.backend.pool.tunnel_opened(request.backend)
        request.status = 101
        self._move(Phase.UPGRADING)
        self._out.append(SendToClient(switching_protocols_head(reason, headers)))
        self._log_access(request)

    # == errors and endings ===============================================================
    def _release_everything(self) -> None:
        """Give back what this connection holds in pools and limits; safe to call twice."""
        request = self.active
        if request is not None:
            if request.pool is not None and request.queued_at is not None:
                request.pool.cancel(self.waiter)
            self._release_slot(request, "aborted")
        backend, self._tunnel_backend = self._tunnel_backend, None
        if backend is not None:
            backend.pool.tunnel_closed(backend)
        client, self._client_counted = self._client_counted, None
        if client is not None:
            self.gw.client_limits.release(client)

    def _fail(self, cause: str, detail: str, *, retry_after_s: int | None = None) -> None:
        """Answer with an explained error when nothing of a response was sent; then close."""
        request = self.active
        self._log(
            "error",
            cause,
            client=self.client_ip,
            method=request.method.decode("latin-1") if request else None,
            target=request.target.decode("latin-1") if request else None,
            pool=request.pool.config.name if request and request.pool else None,
            backend=request.backend.name if request and request.backend else None,
            detail=detail,
            connect_ms=ms(request.connect_ms) if request else None,
            total_ms=ms((self.now - request.received_at) * 1000) if request else None,
        )
        if self.phase in (Phase.IDLE, Phase.WAITING, Phase.FORWARDED):
            extra: tuple[tuple[str, str], ...] = ()
            if cause == "unsupported_version":
                extra = (("Sec-WebSocket-Version", "13"),)
            self._out.append(
                SendToClient(
                    error_response(cause, detail, retry_after_s=retry_after_s, extra_headers=extra)
                )
            )
            self._move(Phase.ANSWERED)
        if self._has_upstream:
            self._has_upstream = False
            self._out.append(ReleaseUpstream(abort=True))
        self._close()

    def _log_access(self, request: Request) -> None:
        if not self.gw.config.server.access_log:
            return  # skip building the fields: this runs once per handshake
        now = self.now
        self._log(
            "access",
            "",
            client=self.client_ip,
            method=request.method.decode("latin-1"),
            target=request.target.decode("latin-1"),
            status=request.status,
            pool=request.pool.config.name if request.pool else None,
            backend=request.backend.name if request.backend else None,
            upgrade=request.ws_key is not None,
            connect_ms=ms(request.connect_ms),
            response_ms=ms((now - request.head_sent_at) * 1000) if request.head_sent else None,
            total_ms=ms((now - request.received_at) * 1000),
        )

    def _clear_deadlines(self) -> None:
        self._header_deadline = None
        self._keepalive_deadline = None
        self._body_deadline = None
        self._response_deadline = None

    def _close(self) -> None:
        if self.phase is Phase.TUNNEL:
            self._out.append(CloseTunnel(CLOSE_GOING_AWAY, "", "closed"))
            return
        if self.phase is Phase.CLOSED:
            return
        self._move(Phase.CLOSED)
        self._clear_deadlines()
        self._release_everything()
        self._out.append(CloseClient())
        if self._has_upstream:
            self._has_upstream = False
            self._out.append(ReleaseUpstream())

    def _abort(self) -> None:
        self.phase = Phase.CLOSED  # from any phase: the exchange cannot be completed
        self._clear_deadlines()
        self._release_everything()
        self._out.append(CloseClient(abort=True))
        if self._has_upstream:
            self._has_upstream = False
            self._out.append(ReleaseUpstream(abort=True))
