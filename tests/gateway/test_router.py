from __future__ import annotations

from wsgate.config.model import RouteConfig
from wsgate.gateway.router import Router, host_without_port

ROUTER = Router(
    [
        RouteConfig(pool="default"),
        RouteConfig(pool="ws", path_prefix="/ws"),
        RouteConfig(pool="api", host="api.example.com"),
        RouteConfig(pool="api-ws", host="api.example.com", path_prefix="/ws"),
        RouteConfig(pool="wild", host="*.example.com", path_prefix="/"),
    ]
)


def test_longest_prefix_wins() -> None:
    assert ROUTER.pool_for(b"other", b"/ws/chat?x=1") == "ws"
    assert ROUTER.pool_for(b"other", b"/page") == "default"


def test_exact_host_beats_wildcard_beats_star() -> None:
    assert ROUTER.pool_for(b"API.example.com:8080", b"/") == "api"
    assert ROUTER.pool_for(b"api.example.com", b"/ws") == "api-ws"
    assert ROUTER.pool_for(b"www.example.com", b"/ws") == "wild"


def test_no_match() -> None:
    router = Router([RouteConfig(pool="a", host="a.test")])
    assert router.pool_for(b"b.test", b"/") is None
    assert router.pool_for(None, b"/") is None


def test_host_without_port() -> None:
    assert host_without_port(b"Example.COM:80") == "example.com"
    assert host_without_port(b"[::1]:8080") == "[::1]"
