"""The handshake policy: Origin lists (exact, wildcard, null, any) and subprotocol
filtering with either answer when none is left, on literal header lists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.handshake_policy import (
    apply_policy,
    filter_subprotocols,
    offered_subprotocols,
    origin_allowed,
    origin_rules,
    parse_origin,
)
from wsgate.protocol.headers import HeaderList

RULES = ("https://app.example.com", "https://*.example.org", "http://localhost:3000", "null")


def allowed(*origins: bytes, rules: tuple[str, ...] = RULES) -> bool:
    return origin_allowed(origins, origin_rules(rules)) is None


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        (b"https://app.example.com", True),
        (b"HTTPS://App.Example.COM", True),  # no case in scheme and host
        (b"https://app.example.com:443", True),  # the default port is no port
        (b"https://app.example.com:8443", False),
        (b"http://app.example.com", False),  # another scheme is another origin
        (b"https://evil.example.com", False),
        (b"https://app.example.com.evil.net", False),
        (b"https://a.example.org", True),
        (b"https://a.b.example.org", True),
        (b"https://example.org", False),  # a wildcard is for subdomains only
        (b"https://badexample.org", False),
        (b"http://localhost:3000", True),
        (b"http://localhost", False),
        (b"null", True),
        (b"https://app.example.com/path", False),  # not a serialised origin
        (b"*", False),
    ],
)
def test_origins_against_the_list(origin: bytes, ok: bool) -> None:
    assert allowed(origin) is ok


def test_no_origin_is_not_a_browser_and_passes() -> None:
    assert allowed()


def test_two_origin_headers_are_refused() -> None:
    assert not allowed(b"https://app.example.com", b"https://app.example.com")


def test_star_allows_any_and_null_needs_its_entry() -> None:
    assert allowed(b"https://anything.test", rules=("*",))
    assert not allowed(b"null", rules=("https://app.example.com",))


@pytest.mark.parametrize(
    "entry",
    ["example.com", "https://example.com/", "https://*", "ftp//x", "https://a b", "https://x:0"],
)
def test_bad_entries_say_what_is_expected(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_origin(entry)


def test_the_refusal_says_which_origin() -> None:
    headers = HeaderList([(b"Host", b"gw"), (b"Origin", b"https://evil.test")])
    with pytest.raises(ProtocolError) as caught:
        apply_policy(headers, ("https://app.example.com",), (), "reject")
    assert caught.value.cause == "origin_not_allowed"
    assert caught.value.reason == "Origin 'https://evil.test' is not in allowed_origins"


def protocols(*values: bytes) -> HeaderList:
    return HeaderList(
        [(b"Host", b"gw")] + [(b"Sec-WebSocket-Protocol", v) for v in values] + [(b"X", b"y")]
    )


def test_the_offered_list_is_filtered_in_the_clients_order() -> None:
    headers = protocols(b"chat.v3, chat.v2", b"admin")
    out = filter_subprotocols(headers, frozenset({"chat.v2", "chat.v3"}), "reject")
    assert list(out) == [
        (b"Host", b"gw"),
        (b"Sec-WebSocket-Protocol", b"chat.v3, chat.v2"),
        (b"X", b"y"),
    ]


def test_a_request_offering_only_allowed_ones_is_unchanged() -> None:
    headers = protocols(b"chat.v2")
    assert filter_subprotocols(headers, frozenset({"chat.v2"}), "reject") is headers
    bare = HeaderList([(b"Host", b"gw")])
    assert filter_subprotocols(bare, frozenset({"chat.v2"}), "reject") is bare


def test_none_left_is_400_or_forwarded_without_the_header() -> None:
    with pytest.raises(ProtocolError) as caught:
        filter_subprotocols(protocols(b"admin, debug"), frozenset({"chat"}), "reject")
    assert caught.value.cause == "subprotocol_not_allowed"
    assert "admin, debug" in caught.value.reason
    out = filter_subprotocols(protocols(b"admin, debug"), frozenset({"chat"}), "forward")
    assert list(out) == [(b"Host", b"gw"), (b"X", b"y")]


def test_names_are_compared_with_their_case() -> None:
    # RFC 6455 section 4.1: subprotocol names are tokens, compared as they are.
    with pytest.raises(ProtocolError):
        filter_subprotocols(protocols(b"Chat"), frozenset({"chat"}), "reject")


def test_empty_lists_switch_each_part_off() -> None:
    headers = protocols(b"anything")
    assert apply_policy(headers, (), (), "reject") is headers


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=6), st.sets(st.sampled_from("abcd"))
)
def test_filtering_keeps_exactly_the_allowed_offers(offered: list[str], allow: set[str]) -> None:
    headers = protocols(", ".join(offered).encode()) if offered else HeaderList()
    try:
        out = filter_subprotocols(headers, frozenset(allow), "reject")
    except ProtocolError:
        assert offered and not set(offered) & allow
        return
    kept = [name.decode() for name in offered_subprotocols(out)]
    assert kept == ([o for o in offered if o in allow] if offered else [])
