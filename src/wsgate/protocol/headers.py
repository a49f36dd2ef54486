"""HTTP header lists as parsed by httptools: `(name, value)` byte pairs, names as sent.

Lookups compare lower-cased names; the list keeps the original order and case so a
forwarded request looks like what the client sent.
"""

from __future__ import annotations

Headers = list[tuple[bytes, bytes]]

# RFC 9110 section 7.6.1: connection-specific fields a proxy must not forward. Transfer-
# Encoding is re-framed by the proxy, so it is dropped and set anew.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


def get_all(headers: Headers, name: bytes) -> list[bytes]:
    """Every value of header `name` (lower case), in order."""
    return [value for key, value in headers if key.lower() == name]


def get_one(headers: Headers, name: bytes) -> bytes | None:
    """The single value of `name`, or None when absent; several values are joined."""
    values = get_all(headers, name)
    if not values:
        return None
    return b", ".join(values) if len(values) > 1 else values[0]


def tokens(headers: Headers, name: bytes) -> set[bytes]:
    """The comma-separated tokens of every `name` header, lower-cased and stripped."""
    found: set[bytes] = set()
    for value in get_all(headers, name):
        for item in value.split(b","):
            item = item.strip().lower()
            if item:
                found.add(item)
    return found


def without_hop_by_hop(headers: Headers) -> Headers:
    """Drop hop-by-hop fields and any field the Connection header names (RFC 9110 7.6.1)."""
    named = tokens(headers, b"connection")
    return [
        (key, value)
        for key, value in headers
        if (lower := key.lower()) not in HOP_BY_HOP and lower not in named
    ]
