"""One request's trip to a backend and back, pure: a slot or a pick, the connection,
the forwarded head and body, the answer relayed or retried, and a checked 101.

An `Exchange` lives while its request is the connection's active one. It talks to its
connection (`ClientCore`) only through `ExchangeHost` (ports.py): commands go on its list,
and what ends the connection (an error answer, an abort) is the host's to do. Its
stages and their table are in `states.py`. Which backend it goes to, and what a failed
attempt costs, is `backend_choice.py`'s; the bytes both ways are `relay.py`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsgate.gateway.answers import access_fields
from wsgate.gateway.backend_choice import (
    admit,
    another_backend_left,
    attempt_failed,
    count_failure,
    pick,
    reject,
    release_slot,
    take_slot,
    use,
)
from wsgate.gateway.commands import Log, ReleaseUpstream, SendToClient, SendToUpstream, StartTunnel
from wsgate.gateway.ports import ExchangeHost
from wsgate.gateway.relay import (
    answer_end,
    answer_head,
    stale_connection_retry,
    upstream_body,
    upstream_head,
)
from wsgate.gateway.states import STAGE_MOVES, BadTransitionError, Request, Stage
from wsgate.policy.keys import hash_key
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.forward import Framing, interim_head, switching_protocols_head
from wsgate.protocol.handshake import check_upgrade_response
from wsgate.protocol.headers import Headers

if TYPE_CHECKING:
    from wsgate.gateway.pool import Backend

# Connect failures that are the gateway's own condition, not the backend's.
GATEWAY_OWN_CAUSES = frozenset({"out_of_file_descriptors"})


class Exchange:
    __slots__ = ("has_upstream", "host", "out", "request", "response_deadline", "stage")

    def __init__(self, host: ExchangeHost, request: Request) -> None:
        self.host = host
        self.out = host.commands  # where commands go (the host's list, appended to)
        self.request = request
        self.stage = Stage.WAITING
        self.has_upstream = False
        self.response_deadline: float | None = None

    def _move(self, new: Stage) -> None:
        if new is not self.stage:
            if new not in STAGE_MOVES[self.stage]:
                raise BadTransitionError(f"exchange {self.stage.name} -> {new.name}")
            self.stage = new

    @property
    def answer_started(self) -> bool:
        """Whether the client has had any of the backend's answer (no error answer then)."""
        return self.stage in (Stage.RESPONDING, Stage.UPGRADING, Stage.SWITCHED)

    # == a backend for the request (backend_choice.py chooses and counts) ================
    def begin(self, *, front: bool = False) -> None:
        """Look for a backend: a handshake asks for a slot (`front`: a retry goes to the
        head of the line), a plain request is given one at once."""
        if self.request.ws_key is None:
            pick(self.request, self.host, self.out)
        else:
            admit(self.request, self.host, self.out, front=front)

    def admitted(self, backend: Backend) -> None:
        """A handshake slot on `backend` is ours, from the queue."""
        if self.stage is not Stage.WAITING:
            backend.pool.handshake_done(backend, 0.0, 0, "aborted")
            return
        take_slot(self.request, self.host, self.out, backend)

    def rejected(self, cause: str, detail: str, retry_after_s: int) -> None:
        """The pool will not give us a slot (queue timeout, no backend left, draining)."""
        if self.stage is Stage.WAITING:
            reject(self.request, self.host, cause, detail, retry_after_s)

    def hash_key(self) -> bytes | None:
        request = self.request
        if request.pool is None:
            return None
        return hash_key(
            request.pool.config.hash_key, request.client, request.headers, request.target
        )

    def release(self) -> None:
        """The connection ends: give back the place in line and the slot, if held."""
        request = self.request
        if request.pool is not None and request.queued_at is not None:
            request.pool.cancel(self.host.waiter)
        release_slot(request, self.host.now, "aborted")

    def drop_upstream(self, *, abort: bool) -> None:
        if self.has_upstream:
            self.has_upstream = False
            self.out.append(ReleaseUpstream(abort=abort))

    # == the upstream connection ==========================================================
    def ready(self, connect_ms: float | None) -> None:
        """The connection `OpenUpstream` asked for is attached: forward the request."""
        request = self.request
        if self.stage is not Stage.WAITING:
            self.out.append(ReleaseUpstream(reuse=True))
            release_slot(request, self.host.now, "aborted")
            return
        self.has_upstream = True
        if connect_ms is not None:
            request.connect_ms = connect_ms
        assert request.backend is not None
        self._move(Stage.FORWARDED)
        default_host = str(request.backend.address)
        head = upstream_head(request, self.host.client_ip, self.host.scheme, default_host)
        self.out.append(SendToUpstream(head))
        request.head_sent = True
        request.head_sent_at = self.host.now
        for part in request.body:
            self.send_body(part)
        request.body.clear()
        request.buffered = 0
        self.host.body_flowing()
        if request.complete:
            self.request_complete()

    def connect_failed(self, cause: str, detail: str) -> None:
        """`OpenUpstream` could not connect."""
        request = self.request
        if self.stage is not Stage.WAITING:
            release_slot(request, self.host.now, "aborted")
            return
        if cause in GATEWAY_OWN_CAUSES:
            # The gateway's own shortage says nothing of the backend (no ejection), and
            # another backend would fail the same way (no retry).
            release_slot(request, self.host.now, "aborted")
            assert request.pool is not None
            self.host.fail(cause, detail, retry_after_s=request.pool.retry_after())
            return
        outcome = "dropped" if cause == "upstream_connect_timeout" else "failed"
        self._retry_or_fail(cause, detail, outcome=outcome)

    @property
    def streaming_body(self) -> bool:
        """Body bytes go straight to the backend (else the connection buffers them)."""
        return self.has_upstream and self.request.head_sent

    def send_body(self, body: bytes) -> None:
        data = upstream_body(self.request, body)
        if data:
            self.out.append(SendToUpstream(data))

    def request_complete(self) -> None:
        """The client sent all of the request: the backend's time to answer starts."""
        request = self.request
        if not self.streaming_body:
            return
        if request.framing is Framing.CHUNKED:
            self.out.append(SendToUpstream(b"0\r\n\r\n"))
        if self.stage is Stage.FORWARDED:
            assert request.pool is not None
            self.response_deadline = self.host.now + request.pool.config.response_timeout_s

    def response_timeout(self) -> None:
        self.response_deadline = None
        request = self.request
        if self.stage is not Stage.FORWARDED:
            return
        assert request.pool is not None
        timeout = request.pool.config.response_timeout_s
        count_failure(request, self.host.now, "dropped")
        backend = request.backend.name if request.backend else None
        self.host.fail(
            "upstream_handshake_timeout",
            f"Backend {backend} sent no response head within {timeout:g} s.",
        )

    # == the backend's answer =============================================================
    def response_head(self, status: int, reason: bytes, headers: Headers, keep_alive: bool) -> None:
        request = self.request
        if self.stage is not Stage.FORWARDED:
            return
        if status == 101:
            self.response_deadline = None
            # Count the tunnel before the slot frees: freeing it admits the next waiter,
            # which must see this connection in max_connections_per_backend.
            self._switching_protocols(reason, headers)
            release_slot(request, self.host.now, "ok")  # nothing left if that failed
            return
        if status < 200:
            if request.version == "1.1":
                self.out.append(SendToClient(interim_head(status, reason, headers)))
            return
        self.response_deadline = None
        pool = request.pool
        assert pool is not None
        if (
            request.ws_key is not None
            and status in pool.config.retry_on_status
            and another_backend_left(request, self.host.now)
        ):
            # A 5xx to a handshake before anything reached the client: try elsewhere.
            self.drop_upstream(abort=False)
            self._retry_or_fail(
                "upstream_bad_response", f"Backend answered {status}.", outcome="failed"
            )
            return
        if request.slot is not None:
            release_slot(request, self.host.now, "ok")
        elif request.backend is not None and status < 500:
            request.backend.pool.note_success(request.backend)
        self._move(Stage.RESPONDING)
        keep_allowed = self.host.keep_alive_allowed()
        head = answer_head(request, status, reason, headers, keep_alive, keep_allowed)
        self.out.append(SendToClient(head))

    def response_body(self, data: bytes) -> None:
        if self.stage is not Stage.RESPONDING:
            return
        if self.request.framing_out is Framing.CHUNKED:
            if data:
                self.out.append(SendToClient(b"%x\r\n" % len(data)))
                self.out.append(SendToClient(data))
                self.out.append(SendToClient(b"\r\n"))
        else:
            self.out.append(SendToClient(data))

    def response_complete(self) -> None:
        request = self.request
        if self.stage is not Stage.RESPONDING:
            return
        end = answer_end(request)
        if end:
            self.out.append(SendToClient(end))
        self.has_upstream = False
        self.out.append(ReleaseUpstream(reuse=request.upstream_reusable and request.complete))
        self.log_access()
        self._move(Stage.DONE)
        self.host.answered(request)

    def upstream_eof(self) -> None:
        # A body that runs to the end of the connection ends here; any other body was cut
        # short, and upstream_lost follows and aborts the client.
        if self.stage is Stage.RESPONDING and self.request.upstream_framing is Framing.CLOSE:
            self.request.upstream_reusable = False
            self.response_complete()

    def upstream_lost(self, error: str) -> None:
        request = self.request
        if self.stage in (Stage.UPGRADING, Stage.RESPONDING):
            # A truncated body (or a 101 without its tunnel): the client must not take
            # it as complete.
            self.has_upstream = False
            self.host.abort()
            return
        if self.stage is not Stage.FORWARDED:
            return
        self.has_upstream = False
        self.response_deadline = None
        if stale_connection_retry(request):
            # A reused keep-alive connection the backend had just closed: once more, fresh.
            request.stale_retry_done = True
            request.head_sent = False
            assert request.backend is not None
            self._move(Stage.WAITING)
            use(request, self.host, self.out, request.backend, fresh=True)
            return
        backend = request.backend.name if request.backend else None
        detail = f"Backend {backend} closed the connection" + (f" ({error})." if error else ".")
        self._retry_or_fail("upstream_closed_early", detail, outcome="failed")

    def bad_response(self, reason: str, cause: str) -> None:
        request = self.request
        if self.stage is Stage.RESPONDING:
            self.has_upstream = False
            self.host.abort()
            return
        if self.stage is not Stage.FORWARDED:
            return
        self.response_deadline = None
        self.has_upstream = False
        backend = request.backend.name if request.backend else None
        detail = f"Backend {backend}: {reason}."
        if cause == "upstream_header_too_large":
            # Another try would bring the same head: the backend's fault, not retried.
            count_failure(request, self.host.now, "failed")
            self.host.fail(cause, detail)
            return
        self._retry_or_fail(cause, detail, outcome="failed")

    # == retries and the 101 ==============================================================
    def _retry_or_fail(self, cause: str, detail: str, *, outcome: str) -> None:
        """A failure before anything reached the client: another backend, if the attempt
        count and the pool's retry budget allow, else the explained error."""
        if attempt_failed(self.request, self.host, self.out, cause, detail, outcome=outcome):
            self._move(Stage.WAITING)
            self.begin(front=True)
            return
        self.host.fail(cause, detail)

    def _switching_protocols(self, reason: bytes, headers: Headers) -> None:
        request = self.request
        if request.ws_key is None:
            self.host.fail("upstream_bad_response", "Backend answered 101 to a plain request.")
            return
        try:
            check_upgrade_response(request.ws_key, headers)
        except ProtocolError as exc:
            backend = request.backend.name if request.backend else None
            release_slot(request, self.host.now, "failed")  # a wrong Accept is the backend's fault
            self.host.fail(exc.cause, f"Backend {backend}: {exc.reason}.")
            return
        if request.backend is not None:
            request.backend.pool.tunnel_opened(request.backend)
            self.host.tunnel_opened(request.backend)  # the connection closes it
        request.status = 101
        self._move(Stage.UPGRADING)
        self.out.append(SendToClient(switching_protocols_head(reason, headers)))
        self.log_access()

    def switch(self) -> None:
        """The backend's bytes after its 101 have come: the tunnel takes the upstream."""
        self._move(Stage.SWITCHED)
        self.has_upstream = False

    def end(self) -> None:
        """The connection answered or closed: nothing more of this exchange."""
        if self.stage is not Stage.SWITCHED:
            self.stage = Stage.DONE
        self.response_deadline = None

    # == log lines ========================================================================
    def log_access(self) -> None:
        if self.host.gw.config.server.access_log:  # skip the fields: once per handshake
            fields = access_fields(self.request, self.host.client_ip, self.host.now)
            self.out.append(Log("access", "", fields))


def tunnel_start(
    request: Request, tail: bytes, early: bytes, backend: Backend | None, client: str | None
) -> StartTunnel:
    """What the tunnel is told when it takes a switched exchange's connection over: the
    bytes either side sent behind the handshake, its log fields and idle timeout, and the
    counts it gives back when it ends (see `StartTunnel`)."""
    assert request.pool is not None
    fields = {
        "request_id": request.request_id,
        "client": request.client,
        "pool": request.pool.config.name,
        "backend": request.backend.name if request.backend else None,
    }
    return StartTunnel(
        tail, early, fields, request.pool.config.tunnel_idle_timeout_s, backend, client
    )
