"""A request's way in (gateway/intake.py): its route, the client script's path, its id
and client address, and the pool's origin, subprotocol and per-client rules. Literal
requests in, literal refusals and fields out, time given by the test."""

from __future__ import annotations

import ipaddress
import random
from typing import Any, cast

from tests.gateway.fakes import FakeGateway, FakePool, make
from wsgate.config.model import RouteConfig, ServerConfig
from wsgate.gateway.intake import (
    MAX_REQUEST_ID,
    Refusal,
    find_route,
    is_client_script,
    no_route,
    take_in,
)
from wsgate.gateway.router import Router
from wsgate.gateway.states import Request
from wsgate.policy.clients import ClientLimits
from wsgate.policy.retry import RetryBudget
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import HeaderList

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def request(
    *headers: tuple[bytes, bytes],
    method: bytes = b"GET",
    target: bytes = b"/chat?room=1",
    ws_key: bytes | None = KEY,
    framing: Framing = Framing.NONE,
) -> Request:
    all_headers = HeaderList([(b"Host", b"gw.test:8080"), *headers])
    return Request(
        method, target, "1.1", all_headers, True, framing, 0.0, ws_key=ws_key, upgrade=True
    )


def gateway(**pool: Any) -> tuple[FakeGateway, FakePool, RouteConfig]:
    _, fake, gw = make(**pool)
    return gw, fake, gw.config.routes[0]


# -- the route -------------------------------------------------------------------------
def test_find_route_gives_the_request_its_routes_overload_answer() -> None:
    gw, _, _ = gateway()
    gw.router = Router((RouteConfig("app", host="gw.test", overload_answer="close"),))
    r = request()
    assert r.overload_answer == "http"
    found = find_route(gw, r)
    assert found == RouteConfig("app", host="gw.test", overload_answer="close")
    assert r.overload_answer == "close"


def test_no_route_leaves_the_request_alone_and_says_what_was_asked() -> None:
    gw, _, _ = gateway()
    gw.router = Router((RouteConfig("app", host="api.test"),))
    r = request()
    assert find_route(gw, r) is None
    assert r.overload_answer == "http"
    assert no_route(r) == Refusal("no_route", "Host 'gw.test:8080', path '/chat'.")
    bare = request(target=b"/x")
    bare.headers = HeaderList()
    assert no_route(bare) == Refusal("no_route", "Host '', path '/x'.")


# -- the client script -----------------------------------------------------------------
def test_is_client_script_only_for_a_bodiless_get_or_head_of_its_path() -> None:
    gw, _, _ = gateway(
        server=ServerConfig(access_log=False, client_script_path="/wsgate-client.js")
    )

    def check(r: Request) -> bool:
        return is_client_script(gw, r)

    path = b"/wsgate-client.js?v=2"
    assert check(request(target=path, ws_key=None))
    assert check(request(target=path, ws_key=None, method=b"HEAD"))
    assert not check(request(target=path))  # a handshake to that path is proxied
    assert not check(request(target=path, ws_key=None, method=b"POST"))
    assert not check(request(target=path, ws_key=None, framing=Framing.LENGTH))
    assert not check(request(target=b"/wsgate-client.jsx", ws_key=None))


def test_no_client_script_without_a_path() -> None:
    gw, _, _ = gateway()
    assert gw.config.server.client_script_path == ""
    assert not is_client_script(gw, request(target=b"/", ws_key=None))


# -- the request id --------------------------------------------------------------------
def test_a_request_id_is_made_when_the_client_sent_none() -> None:
    gw, fake, route = gateway()
    gw.rng = random.Random(1)
    r = request(ws_key=None)
    assert take_in(gw, r, route, "192.0.2.7", 1.0) is None
    assert (r.request_id, r.request_id_made) == ("91b7584a2265b1f5", True)
    assert r.pool is cast(Any, fake) and r.client == "192.0.2.7"


def test_a_clients_request_id_is_kept_and_a_long_one_cut() -> None:
    gw, _, route = gateway()
    r = request((b"X-Request-Id", b"abc-123"), ws_key=None)
    assert take_in(gw, r, route, "192.0.2.7", 1.0) is None
    assert (r.request_id, r.request_id_made) == ("abc-123", False)
    long = request((b"X-Request-Id", b"x" * 300), ws_key=None)
    take_in(gw, long, route, "192.0.2.7", 1.0)
    assert MAX_REQUEST_ID == 200 and long.request_id == "x" * 200


# -- the client's address --------------------------------------------------------------
def test_x_forwarded_for_counts_only_from_a_trusted_peer() -> None:
    gw, _, route = gateway()
    gw.trusted_proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    via_proxy = request((b"X-Forwarded-For", b"203.0.113.5, 10.9.9.9"), ws_key=None)
    take_in(gw, via_proxy, route, "10.1.1.1", 1.0)
    assert via_proxy.client == "203.0.113.5"
    direct = request((b"X-Forwarded-For", b"203.0.113.5"), ws_key=None)
    take_in(gw, direct, route, "192.0.2.7", 1.0)
    assert direct.client == "192.0.2.7"


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    gw, _, route = gateway()
    r = request((b"X-Forwarded-For", b"203.0.113.5"), ws_key=None)
    take_in(gw, r, route, "10.1.1.1", 1.0)
    assert r.client == "10.1.1.1"


# -- a handshake's rules ---------------------------------------------------------------
def test_an_origin_outside_the_list_is_refused() -> None:
    gw, _, route = gateway(allowed_origins=("https://app.test",))
    ok = request((b"Origin", b"https://app.test"))
    assert take_in(gw, ok, route, "192.0.2.7", 1.0) is None
    bad = request((b"Origin", b"https://evil.test"))
    refusal = take_in(gw, bad, route, "192.0.2.7", 1.0)
    assert refusal is not None and refusal.cause == "origin_not_allowed"
    assert "https://evil.test" in refusal.detail and refusal.retry_after_s is None


def test_subprotocols_are_cut_to_the_allowed_or_refused() -> None:
    gw, _, route = gateway(allowed_subprotocols=("chat.v2",))
    r = request((b"Sec-WebSocket-Protocol", b"chat.v1, chat.v2"))
    assert take_in(gw, r, route, "192.0.2.7", 1.0) is None
    assert list(r.headers) == [
        (b"Host", b"gw.test:8080"),
        (b"Sec-WebSocket-Protocol", b"chat.v2"),
    ]
    none_left = request((b"Sec-WebSocket-Protocol", b"chat.v1"))
    refusal = take_in(gw, none_left, route, "192.0.2.7", 1.0)
    assert refusal == Refusal(
        "subprotocol_not_allowed", "none of the offered subprotocols (chat.v1) is allowed"
    )


def test_a_plain_request_skips_the_handshake_rules() -> None:
    gw, _, route = gateway(allowed_origins=("https://app.test",))
    gw.client_limits = ClientLimits(max_connections=1, rate=0.0, burst=0)
    for _ in range(3):
        r = request((b"Origin", b"https://evil.test"), ws_key=None)
        assert take_in(gw, r, route, "192.0.2.7", 1.0) is None
    assert gw.client_limits.open_count("192.0.2.7") == 0


def test_a_client_over_its_limit_is_refused_with_a_retry_after() -> None:
    gw, fake, route = gateway()
    gw.client_limits = ClientLimits(max_connections=1, rate=0.0, burst=0)
    fake.rng = random.Random(1)
    assert take_in(gw, request(), route, "192.0.2.7", 1.0) is None
    assert gw.client_limits.open_count("192.0.2.7") == 1  # counted: the caller gives it back
    refusal = take_in(gw, request(), route, "192.0.2.7", 1.0)
    # A wait of 1 s, jittered by the pool's rng to whole seconds in [1, 1.5].
    assert refusal == Refusal(
        "client_rate_limited",
        "Client 192.0.2.7 is over its connection or handshake limit.",
        2,
    )
    assert gw.client_limits.open_count("192.0.2.7") == 1


def test_a_rate_limited_client_is_told_the_buckets_wait() -> None:
    gw, fake, route = gateway()
    gw.client_limits = ClientLimits(max_connections=0, rate=0.25, burst=1)
    fake.rng = random.Random(1)
    assert take_in(gw, request(), route, "192.0.2.7", 0.0) is None
    refusal = take_in(gw, request(), route, "192.0.2.7", 0.0)
    assert refusal is not None and refusal.retry_after_s == 3  # 4 s, jittered to [2, 6]


def test_an_admitted_handshake_counts_as_a_first_attempt_for_the_retry_budget() -> None:
    gw, fake, route = gateway()
    fake.budget = RetryBudget(ratio=1.0, min_per_s=0.0, window_s=10.0)
    assert not fake.budget.try_retry(1.0)  # no attempt yet: no retry
    take_in(gw, request(ws_key=None), route, "192.0.2.7", 1.0)
    assert not fake.budget.try_retry(1.0)  # a plain request is not counted
    take_in(gw, request(), route, "192.0.2.7", 1.0)
    assert fake.budget.try_retry(1.0)
    assert not fake.budget.try_retry(1.0)
