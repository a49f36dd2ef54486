"""Consistent-hash keys from a request."""

from __future__ import annotations

from wsgate.policy.keys import hash_key
from wsgate.protocol.headers import HeaderList

HEADERS = HeaderList([(b"Host", b"x"), (b"X-User", b"u1"), (b"Cookie", b"sid=abc; other=1")])


def test_each_kind_of_key() -> None:
    assert hash_key("ip", "10.1.2.3", HEADERS, b"/") == b"10.1.2.3"
    assert hash_key("header:X-User", "-", HEADERS, b"/") == b"u1"
    assert hash_key("cookie:sid", "-", HEADERS, b"/") == b"abc"
    assert hash_key("query:room", "-", HEADERS, b"/chat?room=7&x=1") == b"7"
    assert hash_key("query:room", "-", HEADERS, b"/chat") is None


def test_a_target_urlsplit_refuses_gives_no_key_instead_of_an_exception() -> None:
    # llhttp accepts this target; urllib raises ValueError on it. Raised inside the pool's
    # dispatch, that exception once broke another client's handshake and the whole queue.
    assert hash_key("query:room", "-", HEADERS, b"//[x/?room=1") is None
