"""The key that consistent hashing sticks a client to: its address, a header, a cookie
or a query parameter (`hash_key` in a pool's config)."""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

from wsgate.protocol.headers import Headers, get_one


def hash_key(spec: str, client: str, headers: Headers, target: bytes) -> bytes | None:
    """The request's key under `spec` ("ip", "header:NAME", "cookie:NAME", "query:NAME");
    None when the request does not carry it (the balancer then falls back)."""
    kind, _, name = spec.partition(":")
    if kind == "ip":
        return client.encode()
    if kind == "header":
        return get_one(headers, name.lower().encode())
    if kind == "cookie":
        raw = get_one(headers, b"cookie")
        if raw is None:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw.decode("latin-1"))
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value.encode() if morsel is not None else None
    if kind == "query":
        try:
            query = urlsplit(target.decode("latin-1")).query
        except ValueError:  # e.g. "//[x/?room=1": llhttp accepts it, urlsplit does not
            return None
        values = parse_qs(query).get(name)
        return values[0].encode() if values else None
    return None
