"""Routes by Host and path prefix to pool names. Pure: no I/O.

Order of precedence, as in nginx's server_name and longest-prefix location matching:
an exact host beats a `*.suffix` wildcard, which beats `*`; within a host, the longest
matching path prefix wins.
"""

from __future__ import annotations

from collections.abc import Iterable

from wsgate.config.model import RouteConfig


def host_without_port(host: bytes) -> str:
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text.split("]", 1)[0] + "]"
    return text.rsplit(":", 1)[0] if ":" in text else text


def _host_rank(pattern: str, host: str) -> int | None:
    """Higher is more specific; None when the pattern does not match."""
    if pattern == host:
        return 2
    if pattern.startswith("*.") and host.endswith(pattern[1:]):
        return 1
    if pattern == "*":
        return 0
    return None


def _path_matches(prefix: str, path: str) -> bool:
    return path.startswith(prefix)


class Router:
    def __init__(self, routes: Iterable[RouteConfig]) -> None:
        self._routes = tuple(routes)

    def pool_for(self, host: bytes | None, target: bytes) -> str | None:
        """The pool name for a request's Host header and request target, or None."""
        route = self.route_for(host, target)
        return route.pool if route is not None else None

    def route_for(self, host: bytes | None, target: bytes) -> RouteConfig | None:
        """The route for a request's Host header and request target, or None."""
        name = host_without_port(host) if host else ""
        path = target.split(b"?", 1)[0].decode("latin-1")
        best: tuple[int, int] | None = None
        chosen: RouteConfig | None = None
        for route in self._routes:
            rank = _host_rank(route.host, name)
            if rank is None or not _path_matches(route.path_prefix, path):
                continue
            score = (rank, len(route.path_prefix))
            if best is None or score > best:
                best, chosen = score, route
        return chosen
