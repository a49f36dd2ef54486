"""Which backend a request's trip goes to, and what a failed attempt costs. Pure.

The `Exchange` (exchange.py) decides when; these do the choosing and the counting: a
handshake asks its pool's admission for a slot (it may wait in line, and comes back
through `Exchange.admitted`), a plain request is given a backend at once, and a failed
attempt is counted against its backend and may be followed by another. What the request
holds (its slot, the backends tried, the attempts) is on its `Request` (states.py):
nothing here keeps state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsgate.gateway.commands import Command, Log, OpenUpstream
from wsgate.gateway.ports import ExchangeHost
from wsgate.gateway.relay import replayable
from wsgate.gateway.states import Request
from wsgate.policy.admission import Queued, Rejected
from wsgate.policy.keys import hash_key

if TYPE_CHECKING:
    from wsgate.gateway.pool import Backend


def admit(request: Request, host: ExchangeHost, out: list[Command], *, front: bool) -> None:
    """Ask the pool for a handshake slot: one at once, a place in line, or a refusal.
    `front`: a retry goes to the head of the line."""
    pool = request.pool
    assert pool is not None
    now = host.now
    result = pool.admit(host.waiter, now, front=front)
    if isinstance(result, Rejected):
        reject(request, host, result.cause, result.detail, result.retry_after_s)
    elif isinstance(result, Queued):
        request.queued_at = now
    else:
        take_slot(request, host, out, result)


def take_slot(request: Request, host: ExchangeHost, out: list[Command], backend: Backend) -> None:
    """A handshake slot on `backend` is the request's: open a connection to it."""
    request.slot = backend
    request.slot_since = host.now
    request.slot_inflight = backend.inflight
    use(request, host, out, backend)


def pick(request: Request, host: ExchangeHost, out: list[Command]) -> None:
    """A backend for a plain request, at once (no slot, no line)."""
    pool = request.pool
    assert pool is not None
    backend = pool.pick_for_request(
        host.now,
        frozenset(request.tried),
        hash_key(pool.config.hash_key, request.client, request.headers, request.target),
    )
    if backend is None:
        reject(
            request,
            host,
            "no_healthy_upstream",
            f"Pool {pool.config.name}: no backend is up.",
            pool.retry_after(),
        )
        return
    use(request, host, out, backend)


def use(
    request: Request,
    host: ExchangeHost,
    out: list[Command],
    backend: Backend,
    *,
    fresh: bool = False,
) -> None:
    """Ask for a connection to `backend` (`fresh`: not a reused idle one)."""
    request.tried.add(backend)
    request.backend = backend
    out.append(
        OpenUpstream(
            backend,
            head_request=request.method == b"HEAD",
            head_limit=host.gw.config.server.max_response_header_bytes,
            fresh=fresh,
        )
    )


def reject(
    request: Request, host: ExchangeHost, cause: str, detail: str, retry_after_s: int
) -> None:
    """No backend for the request: the connection answers with the explained error."""
    failure = request.last_failure
    if cause == "no_healthy_upstream" and failure is not None and request.tried:
        # Retries ran out of backends: the last real failure explains it best.
        host.fail(*failure)
        return
    host.fail(cause, detail, retry_after_s=retry_after_s)


def release_slot(request: Request, now: float, outcome: str) -> None:
    """Give the handshake slot back, if held; its pool counts the outcome (and the
    backend's time to answer)."""
    backend, request.slot = request.slot, None
    if backend is not None:
        rtt = now - request.slot_since
        backend.pool.handshake_done(backend, rtt, request.slot_inflight, outcome)


def count_failure(request: Request, now: float, outcome: str) -> None:
    """A failed attempt counts against its backend: through the slot's release when the
    request held one (the pool counts it there), else on the backend directly."""
    if request.slot is not None:
        release_slot(request, now, outcome)
    elif request.backend is not None and outcome != "aborted":
        request.backend.pool.note_failure(request.backend)


def another_backend_left(request: Request, now: float) -> bool:
    """Whether a retry could go anywhere: attempts left and a backend not yet tried up."""
    pool = request.pool
    if pool is None or request.attempts > pool.config.retries:
        return False
    return any(b not in request.tried and b.health.available(now) for b in pool.backends)


def attempt_failed(
    request: Request,
    host: ExchangeHost,
    out: list[Command],
    cause: str,
    detail: str,
    *,
    outcome: str,
) -> bool:
    """An attempt failed before anything reached the client: count it, log it, and say
    whether another backend may be tried (the request replayable, the attempt count and
    the pool's retry budget allowing); if so, the request is ready for it."""
    request.last_failure = (cause, detail)
    count_failure(request, host.now, outcome)
    pool = request.pool
    assert pool is not None
    fields = {
        "request_id": request.request_id,
        "client": host.client_ip,
        "pool": pool.config.name,
        "backend": str(request.backend.address) if request.backend else None,
        "attempt": request.attempts,
        "cause": cause,
    }
    out.append(Log("event", "upstream_attempt", fields))
    if (
        replayable(request)
        and request.attempts <= pool.config.retries
        and pool.budget.try_retry(host.now)
    ):
        request.attempts += 1
        request.head_sent = False
        request.connect_ms = None
        return True
    return False
