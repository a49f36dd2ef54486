"""A pool's policy for WebSocket handshakes: the Origin values it allows (RFC 6455 section
10.2, RFC 6454) and the subprotocols it passes on (section 4.1, 11.3.4). Pure: a request's
headers in, the headers to forward out, or a ProtocolError with the cause.

    headers = apply_policy(headers, allowed_origins, allowed_subprotocols, fallback)

Origin is what browsers send, so the list protects users' browsers from pages of other
sites opening WebSockets with their cookies (cross-site WebSocket hijacking); a request
without Origin (not a browser) is let through, since such a client could send any Origin
it likes. Entries are serialised origins, `scheme://host[:port]`, compared without case
and with the scheme's default port left out: exact (`https://app.example.com`), a wildcard
for subdomains (`https://*.example.com`: not the bare domain), `null`, or `*` (any).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.headers import HeaderList, Headers, get_all

ORIGIN_NOT_ALLOWED = "origin_not_allowed"
SUBPROTOCOL_NOT_ALLOWED = "subprotocol_not_allowed"
FALLBACKS = ("reject", "forward")  # when none of the offered subprotocols is allowed

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# RFC 6454 section 6.1: scheme "://" host [ ":" port ]; a wildcard label only in front.
_ORIGIN = re.compile(
    r"([a-z][a-z0-9+.\-]*)://(\*\.)?([a-z0-9\-._~%]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?"
)
# RFC 9110 section 5.6.2 token: what a subprotocol name may hold (RFC 6455 section 4.1).
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True, slots=True)
class OriginRule:
    """One allowed origin: `host` is a suffix (".example.com") when `wildcard`."""

    scheme: str
    host: str
    port: int | None
    wildcard: bool = False

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        if scheme != self.scheme or port != self.port:
            return False
        return host.endswith(self.host) if self.wildcard else host == self.host


ANY = OriginRule("*", "*", None)
NULL = OriginRule("null", "", None)


def parse_origin(text: str) -> OriginRule:
    """A config entry or a request's Origin value as a rule; ValueError says why not."""
    value = text.strip().lower()
    if value == "*":
        return ANY
    if value == "null":
        return NULL
    match = _ORIGIN.fullmatch(value)
    if match is None:
        raise ValueError('"scheme://host[:port]" (no path), "https://*.example.com", "null" or "*"')
    scheme, star, host, port_text = match.groups()
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        raise ValueError("a port from 1 to 65535")
    if port == DEFAULT_PORTS.get(scheme):
        port = None  # browsers leave the default port out
    if star:
        return OriginRule(scheme, "." + host, port, wildcard=True)
    return OriginRule(scheme, host, port)


@functools.lru_cache(maxsize=256)
def origin_rules(entries: tuple[str, ...]) -> tuple[OriginRule, ...]:
    """A pool's `allowed_origins`, parsed once (the config loader has checked each)."""
    return tuple(parse_origin(entry) for entry in entries)


def origin_allowed(values: Iterable[bytes], rules: tuple[OriginRule, ...]) -> str | None:
    """None when the request's Origin values are allowed, else why not (for the answer)."""
    found = list(values)
    if not found:
        return None  # not a browser: nothing to protect (see the module's docstring)
    if len(found) > 1:
        return "more than one Origin header"
    shown = found[0].decode("latin-1")
    if ANY in rules:
        return None
    try:
        origin = parse_origin(shown)
    except ValueError:
        return f"Origin {shown!r} is not a serialised origin"
    if origin.wildcard or origin is ANY:
        return f"Origin {shown!r} is not a serialised origin"
    if origin is NULL:
        return None if NULL in rules else "Origin 'null' is not in allowed_origins"
    for rule in rules:
        if rule is not NULL and rule.matches(origin.scheme, origin.host, origin.port):
            return None
    return f"Origin {shown!r} is not in allowed_origins"


def offered_subprotocols(headers: Headers) -> list[bytes]:
    """The client's Sec-WebSocket-Protocol list, in its order of preference."""
    return [
        item.strip()
        for value in get_all(headers, b"sec-websocket-protocol")
        for item in value.split(b",")
        if item.strip()
    ]


def filter_subprotocols(headers: Headers, allowed: frozenset[str], fallback: str) -> Headers:
    """The headers with Sec-WebSocket-Protocol cut down to the allowed subprotocols.
    When none is left: ProtocolError(subprotocol_not_allowed), or with `fallback`
    "forward" the request goes on without the header (the backend then picks none)."""
    offered = offered_subprotocols(headers)
    if not offered:
        return headers
    kept = [name for name in offered if name.decode("latin-1") in allowed]
    if len(kept) == len(offered):
        return headers
    if not kept and fallback != "forward":
        shown = ", ".join(name.decode("latin-1") for name in offered)
        raise ProtocolError(
            SUBPROTOCOL_NOT_ALLOWED, f"none of the offered subprotocols ({shown}) is allowed"
        )
    out = HeaderList()
    placed = False
    for name, value in headers:
        if name.lower() != b"sec-websocket-protocol":
            out.append((name, value))
        elif kept and not placed:
            out.append((name, b", ".join(kept)))
            placed = True
    return out


def apply_policy(
    headers: Headers,
    allowed_origins: tuple[str, ...],
    allowed_subprotocols: tuple[str, ...],
    fallback: str,
) -> Headers:
    """Check a WebSocket upgrade request against a pool's policy (each part off when its
    list is empty); returns the headers to forward, or raises ProtocolError with
    `origin_not_allowed` (403) or `subprotocol_not_allowed` (400)."""
    if allowed_origins:
        refused = origin_allowed(get_all(headers, b"origin"), origin_rules(allowed_origins))
        if refused is not None:
            raise ProtocolError(ORIGIN_NOT_ALLOWED, refused)
    if allowed_subprotocols:
        headers = filter_subprotocols(headers, frozenset(allowed_subprotocols), fallback)
    return headers
