"""A request's way in, before any backend: its route, its identity and the rules a
client connection must pass (origins and subprotocols, per-client limits). Pure.

`take_in` either fills in the request (pool, request id, client address, the headers the
policy rewrote) and returns None, or returns the `Refusal` the connection answers with.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsgate.config.model import RouteConfig
from wsgate.gateway.ports import GatewayView
from wsgate.gateway.states import Request
from wsgate.policy.buckets import jittered_retry_after
from wsgate.policy.clients import client_address
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.forward import Framing
from wsgate.protocol.handshake_policy import apply_policy
from wsgate.protocol.headers import get_one

MAX_REQUEST_ID = 200  # bytes of a client's X-Request-Id kept for the log lines


@dataclass(frozen=True, slots=True)
class Refusal:
    cause: str
    detail: str
    retry_after_s: int | None = None


def find_route(gw: GatewayView, request: Request) -> RouteConfig | None:
    """The route of `request` (and how its handshake is turned away, if it is)."""
    route = gw.router.route_for(get_one(request.headers, b"host"), request.target)
    if route is not None:
        request.overload_answer = route.overload_answer
    return route


def no_route(request: Request) -> Refusal:
    shown = (get_one(request.headers, b"host") or b"").decode("latin-1")
    path = request.target.split(b"?", 1)[0].decode("latin-1")
    return Refusal("no_route", f"Host {shown!r}, path {path!r}.")


def is_client_script(gw: GatewayView, request: Request) -> bool:
    """A GET (or HEAD) of server.client_script_path, which the gateway answers itself."""
    path = gw.config.server.client_script_path
    return (
        bool(path)
        and request.method in (b"GET", b"HEAD")
        and request.framing is Framing.NONE
        and request.ws_key is None
        and request.target.split(b"?", 1)[0] == path.encode()
    )


def take_in(
    gw: GatewayView, request: Request, route: RouteConfig, peer_ip: str, now: float
) -> Refusal | None:
    """Give `request` its pool, id and client address and check a handshake against the
    pool's origin and subprotocol rules and the client's limits. A handshake that passes
    is counted against its client (the caller gives it back) and the pool's retry budget."""
    pool = request.pool = gw.pools[route.pool]
    given = get_one(request.headers, b"x-request-id")
    if given:
        request.request_id = given[:MAX_REQUEST_ID].decode("latin-1")
    else:
        request.request_id = f"{gw.rng.getrandbits(64):016x}"
        request.request_id_made = True
    request.client = client_address(
        peer_ip, get_one(request.headers, b"x-forwarded-for"), gw.trusted_proxies
    )
    if request.ws_key is None:
        return None
    config = pool.config
    if config.allowed_origins or config.allowed_subprotocols:
        try:
            request.headers = apply_policy(
                request.headers,
                config.allowed_origins,
                config.allowed_subprotocols,
                config.subprotocol_fallback,
            )
        except ProtocolError as refused:
            return Refusal(refused.cause, refused.reason)
    wait_s = gw.client_limits.admit(request.client, now)
    if wait_s is not None:
        return Refusal(
            "client_rate_limited",
            f"Client {request.client} is over its connection or handshake limit.",
            jittered_retry_after(wait_s, pool.rng),
        )
    pool.budget.on_attempt(now)
    return None
