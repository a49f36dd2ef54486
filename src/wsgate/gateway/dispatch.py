"""Choosing a backend for a request: handshake admission (slots, queue), plain picks,
connecting, and retries on another backend. Mixed into `ClientConnection`; the pool
calls back through the `Waiter` methods (`admitted`, `rejected`, `hash_key`, `excluded`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from wsgate.gateway.exchange import Request, State
from wsgate.gateway.pool import Backend, ConnectError, Rejected
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.policy.keys import hash_key
from wsgate.protocol.forward import Framing

if TYPE_CHECKING:
    from wsgate.gateway.server import Gateway


# RFC 9110 section 9.2.2: requests that may be sent again without harm.
IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})

# Connect failures that are the gateway's own condition, not the backend's.
GATEWAY_OWN_CAUSES = frozenset({"out_of_file_descriptors"})


def _replayable(request: Request) -> bool:
    """Whether another backend may get this request: always if nothing was sent yet;
    after the head went out, only an idempotent request without a body (the body's bytes
    were streamed, not kept)."""
    if not request.head_sent:
        return True
    return request.framing is Framing.NONE and request.method in IDEMPOTENT_METHODS


class BackendChoice:
    # What this mixin assigns itself; the connection class that mixes it in declares the
    # rest of its state in its own slots.
    __slots__ = ("_connect_task", "upstream")
    gw: Gateway
    loop: asyncio.AbstractEventLoop
    client_ip: str
    state: State
    active: Request | None
    upstream: UpstreamConnection | None
    _connect_task: asyncio.Task[None] | None

    def _fail(self, cause: str, detail: str, *, retry_after_s: int | None = None) -> None:
        raise NotImplementedError

    def _attach(self, request: Request, conn: UpstreamConnection) -> None:
        raise NotImplementedError

    # -- handshake admission (WebSocket) ----------------------------------------------------
    def _admit(self, request: Request, *, front: bool = False) -> None:
        pool = request.pool
        assert pool is not None
        result = pool.admit(self, self.loop.time(), front=front)
        if isinstance(result, Backend):
            self.admitted(result)
        elif isinstance(result, Rejected):
            self._reject(request, result.cause, result.detail, result.retry_after_s)
        else:
            request.queued_at = self.loop.time()

    def admitted(self, backend: Backend) -> None:
        """Waiter: a handshake slot on `backend` is ours."""
        request = self.active
        if request is None or request.pool is None or self.state is State.CLOSED:
            backend.pool.handshake_done(backend, 0.0, 0, "aborted")
            return
        request.slot = backend
        request.slot_since = self.loop.time()
        request.slot_inflight = backend.inflight
        self._use_backend(request, backend)

    def rejected(self, cause: str, detail: str, retry_after_s: int) -> None:
        """Waiter: the pool will not give us a slot (queue timeout, no backend left)."""
        if self.active is not None and self.state is not State.CLOSED:
            self._reject(self.active, cause, detail, retry_after_s)

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
            self._fail(failure.cause, failure.detail)
            return
        self._fail(cause, detail, retry_after_s=retry_after_s)

    def _release_slot(self, request: Request, outcome: str) -> None:
        backend, request.slot = request.slot, None
        if backend is not None:
            rtt = self.loop.time() - request.slot_since
            backend.pool.handshake_done(backend, rtt, request.slot_inflight, outcome)

    def _retry_or_fail(self, request: Request, cause: str, detail: str, *, outcome: str) -> None:
        """A failure before anything reached the client: another backend, if the attempt
        count and the pool's retry budget allow, else the explained error."""
        request.last_failure = ConnectError(cause, detail)
        if request.slot is not None:
            self._release_slot(request, outcome)
        elif request.backend is not None and outcome != "aborted":
            request.backend.pool.note_failure(request.backend)
        pool = request.pool
        assert pool is not None
        self.gw.log.event(
            "upstream_attempt",
            client=self.client_ip,
            pool=pool.config.name,
            backend=str(request.backend.address) if request.backend else None,
            attempt=request.attempts,
            cause=cause,
        )
        self.upstream = None
        if (
            _replayable(request)
            and request.attempts <= pool.config.retries
            and pool.budget.try_retry(self.loop.time())
        ):
            request.attempts += 1
            request.head_sent = False
            request.connect_ms = None
            if request.ws_key is not None:
                self._admit(request, front=True)
            else:
                self._pick_for_request(request)
            return
        self._fail(cause, detail)

    # -- plain requests and connecting ---------------------------------------------------------
    def _pick_for_request(self, request: Request) -> None:
        pool = request.pool
        assert pool is not None
        backend = pool.pick_for_request(
            self.loop.time(),
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
        conn = backend.pool.take_idle(backend)
        if conn is not None:
            self._attach(request, conn)
            return
        self._connect_task = self.loop.create_task(self._connect(request, backend))

    async def _connect(self, request: Request, backend: Backend) -> None:
        started = self.loop.time()
        try:
            conn = await backend.pool.connect(backend)
        except ConnectError as failure:
            self._connect_task = None
            if self.state is State.CLOSED or request is not self.active:
                self._release_slot(request, "aborted")
                return
            if failure.cause in GATEWAY_OWN_CAUSES:
                # The gateway's own shortage says nothing of the backend (no ejection),
                # and another backend would fail the same way (no retry).
                self._release_slot(request, "aborted")
                self._fail(failure.cause, failure.detail, retry_after_s=backend.pool.retry_after())
                return
            outcome = "dropped" if failure.cause == "upstream_connect_timeout" else "failed"
            self._retry_or_fail(request, failure.cause, failure.detail, outcome=outcome)
            return
        self._connect_task = None
        request.connect_ms = (self.loop.time() - started) * 1000
        if self.state is State.CLOSED or request is not self.active:
            backend.pool.release(conn)
            self._release_slot(request, "aborted")
            return
        self._attach(request, conn)

    def _can_retry(self, request: Request) -> bool:
        pool = request.pool
        if pool is None or request.attempts > pool.config.retries:
            return False
        now = self.loop.time()
        return any(b not in request.tried and b.health.available(now) for b in pool.backends)
