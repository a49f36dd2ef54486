"""HTTP header lists as parsed by httptools: `(name, value)` byte pairs, names as sent.

Lookups compare lower-cased names; the list keeps the original order and case so a
forwarded request looks like what the client sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mypy_extensions import mypyc_attr

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


# A list subclass: mypyc compiles only classes that derive from object or native classes.
@mypyc_attr(native_class=False)
class HeaderList(list[tuple[bytes, bytes]]):
    """A parsed head's header list that lower-cases each name once, on the first lookup.

    A handshake looks up about a dozen fields; scanning and lower-casing the whole list for
    each was a visible share of the gateway's CPU per handshake. The index is rebuilt if the
    list has grown since (a parser appending trailers), so it never answers stale.
    """

    __slots__ = ("_index", "_indexed_len", "_tokens")

    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(items)
        self._index: dict[bytes, list[bytes]] = {}
        self._indexed_len = -1
        self._tokens: dict[bytes, frozenset[bytes]] = {}

    def lookup(self, name: bytes) -> Sequence[bytes]:
        if self._indexed_len != len(self):
            index: dict[bytes, list[bytes]] = {}
            for key, value in self:
                index.setdefault(key.lower(), []).append(value)
            self._index = index
            self._indexed_len = len(self)
            self._tokens = {}
        return self._index.get(name, ())

    def tokens(self, name: bytes) -> frozenset[bytes]:
        values = self.lookup(name)
        found = self._tokens.get(name)
        if found is None:
            found = self._tokens[name] = _split_tokens(values)
        return found


def get_all(headers: Headers, name: bytes) -> Sequence[bytes]:
    """Every value of header `name` (lower case), in order."""
    if type(headers) is HeaderList:
        return headers.lookup(name)
    return [value for key, value in headers if key.lower() == name]


def get_one(headers: Headers, name: bytes) -> bytes | None:
    """The single value of `name`, or None when absent; several values are joined."""
    values = get_all(headers, name)
    if not values:
        return None
    return b", ".join(values) if len(values) > 1 else values[0]


def tokens(headers: Headers, name: bytes) -> frozenset[bytes]:
    """The comma-separated tokens of every `name` header, lower-cased and stripped."""
    if type(headers) is HeaderList:
        return headers.tokens(name)
    return _split_tokens(get_all(headers, name))


def _split_tokens(values: Iterable[bytes]) -> frozenset[bytes]:
    found: set[bytes] = set()
    for value in values:
        for item in value.split(b","):
            item = item.strip().lower()
            if item:
                found.add(item)
    return frozenset(found)


# Fields a Connection header may not remove: they frame or route the message. Obeying
# `Connection: content-length` would forward a body without its length, and the backend
# would read that body as a second, unrouted request (smuggling).
NOT_NAMEABLE: frozenset[bytes] = frozenset({b"content-length", b"host"})


def without_hop_by_hop(headers: Headers) -> Headers:
    """Drop hop-by-hop fields and any field the Connection header names (RFC 9110 7.6.1),
    except the framing and routing fields in NOT_NAMEABLE."""
    named = tokens(headers, b"connection") - NOT_NAMEABLE
    return [
        (key, value)
        for key, value in headers
        if (lower := key.lower()) not in HOP_BY_HOP and lower not in named
    ]
