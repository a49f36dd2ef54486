"""A request's turn, pure: what the connection does with its next pipelined request
before any backend sees it.

A request is refused (a head the reader refused, the gateway draining, no route, a rule
of intake.py), answered by the gateway itself (the client script), or it goes to a
backend: then `answer_here` returns False and the connection (`ClientCore`) makes its
`Exchange`. All of it goes through the connection's `ExchangeHost` (ports.py).
"""

from __future__ import annotations

from wsgate.gateway.answers import script_answer
from wsgate.gateway.commands import SendToClient
from wsgate.gateway.intake import Refusal, find_route, is_client_script, no_route, take_in
from wsgate.gateway.ports import ExchangeHost
from wsgate.gateway.states import Request
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import HeaderList

SHUTTING_DOWN = Refusal("shutting_down", "", retry_after_s=1)


def answer_here(host: ExchangeHost, request: Request) -> bool:
    """Answer `request` without a backend when it gets none, and say so; False when it
    goes to a backend (`take_in` has then filled it in)."""
    if request.error is not None:
        host.fail(request.error.cause, request.error.reason)
        return True
    gw = host.gw
    route = find_route(gw, request)  # first: a draining refusal is worded by the route
    if gw.draining:
        refusal: Refusal | None = SHUTTING_DOWN
    elif is_client_script(gw, request):
        answer_client_script(host, request)
        return True
    elif route is None:
        refusal = no_route(request)
    else:
        refusal = take_in(gw, request, route, host.client_ip, host.now)
    if refusal is None:
        return False
    host.fail(refusal.cause, refusal.detail, retry_after_s=refusal.retry_after_s)
    return True


def answer_client_script(host: ExchangeHost, request: Request) -> None:
    """Answer GET/HEAD of the client script's path."""
    request.complete = True  # a bodiless head is the whole request
    keep = request.keep_alive and host.keep_alive_allowed()
    request.close_after = not keep
    head_only = request.method == b"HEAD"
    answer = script_answer(host.gw.client_script, head_only=head_only, keep_alive=keep)
    host.commands.append(SendToClient(answer))
    request.status = 200
    host.answered(request)


def stand_in(error: ProtocolError, now: float) -> Request:
    """The place in line of a head the reader refused: answered with `error` in its turn,
    after the requests before it."""
    return Request(
        method=b"",
        target=b"",
        version="1.1",
        headers=HeaderList(),
        keep_alive=False,
        framing=Framing.NONE,
        received_at=now,
        error=error,
    )
