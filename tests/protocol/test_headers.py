"""Header lookups: the indexed HeaderList answers exactly as a scan of a plain list."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wsgate.protocol.headers import HeaderList, get_all, get_one, tokens, without_hop_by_hop

NAMES = [b"Host", b"host", b"Connection", b"UPGRADE", b"Upgrade", b"X-Thing", b"Cookie"]
names = st.sampled_from(NAMES)
values = st.sampled_from([b"", b"a", b"Upgrade, keep-alive", b" x ,, Y ", b"websocket"])
header_lists = st.lists(st.tuples(names, values), max_size=12)


@given(header_lists, names)
def test_indexed_lookups_match_a_plain_scan(pairs: list[tuple[bytes, bytes]], name: bytes) -> None:
    indexed = HeaderList(pairs)
    lower = name.lower()
    assert list(get_all(indexed, lower)) == list(get_all(pairs, lower))
    assert get_one(indexed, lower) == get_one(pairs, lower)
    assert tokens(indexed, lower) == tokens(pairs, lower)
    assert without_hop_by_hop(indexed) == without_hop_by_hop(pairs)


def test_index_follows_appends() -> None:
    headers = HeaderList([(b"Host", b"a")])
    assert get_one(headers, b"host") == b"a"
    assert tokens(headers, b"connection") == frozenset()
    headers.append((b"Connection", b"Upgrade"))
    headers.append((b"HOST", b"b"))
    assert list(get_all(headers, b"host")) == [b"a", b"b"]
    assert tokens(headers, b"connection") == {b"upgrade"}


def test_keeps_order_and_case_for_forwarding() -> None:
    headers = HeaderList([(b"X-Thing", b"1"), (b"Host", b"h")])
    get_one(headers, b"host")
    assert list(headers) == [(b"X-Thing", b"1"), (b"Host", b"h")]


def test_connection_cannot_remove_framing_or_routing_fields() -> None:
    # `Connection: content-length` would forward a body without its length: the backend
    # would read the body as a second request (smuggling). Other named fields still go.
    headers = HeaderList(
        [
            (b"Host", b"x"),
            (b"Connection", b"content-length, Host, X-Drop"),
            (b"Content-Length", b"38"),
            (b"X-Drop", b"1"),
        ]
    )
    assert without_hop_by_hop(headers) == [(b"Host", b"x"), (b"Content-Length", b"38")]
