"""The pure request-head checks and head-size arithmetic behind the hardening fixes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.headers import HeaderList
from wsgate.protocol.limits import head_overflows, head_tail
from wsgate.protocol.request import announces_body, check_request_head


def headers(*pairs: tuple[bytes, bytes]) -> HeaderList:
    found = HeaderList()
    for pair in pairs:
        found.append(pair)
    return found


HOST = (b"Host", b"x")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ((), False),
        (((b"Content-Length", b"0"),), False),
        (((b"Content-Length", b" 00 "),), False),
        (((b"Content-Length", b"5"),), True),
        (((b"Transfer-Encoding", b"chunked"),), True),
        (((b"Transfer-Encoding", b"identity"),), True),
    ],
)
def test_announces_body(fields: tuple[tuple[bytes, bytes], ...], expected: bool) -> None:
    assert announces_body(headers(*fields)) is expected


@pytest.mark.parametrize(
    ("version", "fields", "upgrade", "cause"),
    [
        ("2.0", (HOST,), False, "unsupported_http_version"),
        ("0.9", (HOST,), False, "unsupported_http_version"),
        ("1.1", (), False, "bad_host"),
        ("1.1", (HOST, (b"host", b"y")), False, "bad_host"),
        ("1.0", (HOST, HOST), False, "bad_host"),
        ("1.1", (HOST, (b"Content-Length", b"3")), True, "upgrade_with_body"),
        ("1.1", (HOST, (b"Transfer-Encoding", b"chunked")), True, "upgrade_with_body"),
    ],
)
def test_refused_heads(
    version: str, fields: tuple[tuple[bytes, bytes], ...], upgrade: bool, cause: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_request_head(version, headers(*fields), upgrade=upgrade)
    assert caught.value.cause == cause


@pytest.mark.parametrize(
    ("version", "fields", "upgrade"),
    [
        ("1.1", (HOST,), True),
        ("1.1", (HOST, (b"Content-Length", b"0")), True),
        ("1.1", (HOST, (b"Content-Length", b"3")), False),
        ("1.0", (), False),
    ],
)
def test_accepted_heads(
    version: str, fields: tuple[tuple[bytes, bytes], ...], upgrade: bool
) -> None:
    check_request_head(version, headers(*fields), upgrade=upgrade)


def test_a_head_that_ends_within_the_limit_does_not_overflow() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert not head_overflows(0, b"", head + b"body" * 100, len(head))
    assert head_overflows(0, b"", head + b"body" * 100, len(head) - 1)


def test_the_end_of_a_head_split_across_reads_is_seen() -> None:
    first, second = b"GET / HTTP/1.1\r\nHost: x\r\n\r", b"\nbody" * 50
    tail = head_tail(b"", first)
    assert not head_overflows(len(first), tail, second, len(first) + 1)


@given(
    st.binary(max_size=64),
    st.lists(
        st.sampled_from([b"\r", b"\n", b"\r\n\r\n", b"ab" * 9]) | st.binary(max_size=40), max_size=8
    ),
)
def test_counting_in_reads_agrees_with_counting_at_once(prefix: bytes, reads: list[bytes]) -> None:
    # Whatever the cut into reads, a stream whose head ends within the limit never
    # overflows, and one with no end of head overflows once it passes the limit.
    limit = 64
    stream = prefix + b"".join(reads)
    end = stream.find(b"\r\n\r\n")
    count, tail, overflowed = 0, b"", False
    for data in [prefix, *reads]:
        if head_overflows(count, tail, data, limit):
            overflowed = True
            break
        count += len(data)
        tail = head_tail(tail, data)
        if end != -1 and count >= end + 4:
            break  # the parser has the whole head: counting stops, as in the gateway
    ends_in_time = end != -1 and end + 4 <= limit
    if ends_in_time:
        assert not overflowed
    elif len(stream) > limit and end == -1:
        assert overflowed
