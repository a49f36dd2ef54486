"""The client side of the opening handshake, fed literal bytes, and round trips through
the gateway's own server-side checks."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgate.protocol.client_handshake import (
    MAX_RESPONSE_HEAD_BYTES,
    ResponseHead,
    build_request,
    check_101,
    host_header,
    make_key,
    parse_response_head,
)
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.handshake import accept_value, check_upgrade_request
from wsgate.protocol.headers import get_one

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
GOOD_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)
FRAME = b"\x81\x02hi"


def parsed(data: bytes | bytearray, max_bytes: int = MAX_RESPONSE_HEAD_BYTES) -> ResponseHead:
    head = parse_response_head(data, max_bytes)
    assert head is not None
    return head


def refusal(data: bytes, max_bytes: int = MAX_RESPONSE_HEAD_BYTES) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_response_head(data, max_bytes)
    return caught.value


# --- the request -------------------------------------------------------------------


def test_make_key_is_16_bytes_in_base64() -> None:
    assert make_key(b"the sample nonce") == KEY
    with pytest.raises(ValueError, match="16 random bytes"):
        make_key(b"short")


@pytest.mark.parametrize(
    ("host", "port", "secure", "value"),
    [
        ("example.org", 80, False, "example.org"),
        ("example.org", 443, True, "example.org"),
        ("example.org", 443, False, "example.org:443"),
        ("127.0.0.1", 8080, False, "127.0.0.1:8080"),
        ("::1", 80, False, "[::1]"),
        ("::1", 9000, True, "[::1]:9000"),
    ],
)
def test_host_header(host: str, port: int, secure: bool, value: str) -> None:
    assert host_header(host, port, secure) == value


def test_request_bytes() -> None:
    assert build_request("/chat?room=1", "example.test:8080", KEY) == (
        b"GET /chat?room=1 HTTP/1.1\r\n"
        b"Host: example.test:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )


def test_request_options_and_extra_headers() -> None:
    raw = build_request(
        "/",
        "h",
        KEY,
        [("X-A", "1"), ("host", "other"), ("X-A", "2"), ("User-Agent", "me")],
        origin="https://app.test",
        subprotocols=("v1", "v2"),
        user_agent="wsgate-test",
    )
    assert raw == (
        b"GET / HTTP/1.1\r\n"
        b"host: other\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: https://app.test\r\n"
        b"Sec-WebSocket-Protocol: v1, v2\r\n"
        b"User-Agent: me\r\n"
        b"X-A: 1\r\n"
        b"X-A: 2\r\n\r\n"
    )


def test_none_drops_a_field() -> None:
    raw = build_request("/", "h", KEY, [("Sec-WebSocket-Version", None), ("X-B", None)])
    assert b"Sec-WebSocket-Version" not in raw
    assert b"X-B" not in raw


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/ HTTP/1.1\r\nX-Evil: 1\r\n", []),
        ("/", [("X-A", "1\r\nX-Evil: 1")]),
        ("/", [("X-A", "1\nX-Evil: 1")]),
        ("/", [("X-A", "a\0b")]),
    ],
)
def test_request_refuses_line_breaks(path: str, headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        build_request(path, "h", KEY, headers)


@pytest.mark.parametrize("name", ["", "X A ", "X:A", " Host"])
def test_request_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a header name"):
        build_request("/", "h", KEY, [(name, "v")])


# --- the answer's head -------------------------------------------------------------


def test_good_101_and_the_frames_after_it() -> None:
    data = GOOD_101 + FRAME
    head = parsed(data)
    assert (head.status, head.reason, head.interim) == (101, "Switching Protocols", ())
    assert head.headers == [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", ACCEPT),
    ]
    assert data[head.size :] == FRAME
    check_101(KEY, head)


def test_split_across_reads() -> None:
    data = GOOD_101 + FRAME
    for cut in range(len(GOOD_101)):
        assert parse_response_head(data[:cut]) is None, cut
    head = parsed(bytearray(data[: len(GOOD_101)]))
    assert head.size == len(GOOD_101)


def test_1xx_before_the_answer_is_skipped() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    assert parse_response_head(data) is None
    head = parsed(data + GOOD_101 + FRAME)
    assert (head.status, head.interim) == (101, (100, 103))
    assert get_one(head.headers, b"link") is None
    assert (data + GOOD_101 + FRAME)[head.size :] == FRAME
    check_101(KEY, head)


def test_limit_at_n_passes_and_n_plus_1_is_refused() -> None:
    n = len(GOOD_101)
    assert parsed(GOOD_101 + FRAME, max_bytes=n).size == n
    assert parse_response_head(GOOD_101[:-1], max_bytes=n) is None
    error = refusal(GOOD_101, max_bytes=n - 1)
    assert error.cause == "upstream_header_too_large"
    assert error.reason == f"response head larger than {n - 1} bytes"
    # Unended bytes: refused as soon as the limit is reached, not only at the end.
    assert refusal(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100, max_bytes=64).cause == (
        "upstream_header_too_large"
    )


def test_the_limit_covers_interim_heads() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    n = len(interim) + len(GOOD_101)
    assert parsed(interim + GOOD_101, max_bytes=n).status == 101
    assert refusal(interim + GOOD_101, max_bytes=n - 1).cause == "upstream_header_too_large"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP response: b'SSH-2.0-OpenSSH_9.6\\r\\n'"),
        (b"SSH", "not an HTTP response"),  # refused before the head could end
        (b"\x16\x03\x01\x00", "TLS record bytes instead of an HTTP response"),
        (b"\x15\x03\x03\x00\x02\x02\x46", "TLS record bytes"),
        (b"<html>", "not an HTTP response"),
        (b"HTTP/2 200\r\n\r\n", "not an HTTP/1.x status line: 'HTTP/2 200'"),
        (b"HTTP/1.1 2000 x\r\n\r\n", "not an HTTP/1.x status line: 'HTTP/1.1 2000 x'"),
        (b"HTTP/1.1 abc\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 099 x\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1  200 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 1\xb22 x\r\n\r\n", "not an HTTP/1.x status line"),  # '²' is no digit
        (b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", "malformed header line: 'nocolon'"),
        (b"HTTP/1.1 200 OK\r\n: empty\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", "continuation line before any header"),
        (b"HTTP/1.1 100 Continue\r\n\r\nSSH-2.0", "not an HTTP response: b'SSH-2.0'"),
    ],
)
def test_garbage(data: bytes, words: str) -> None:
    error = refusal(data)
    assert error.cause == "upstream_bad_response"
    assert words in error.reason


def test_tolerated_deviations() -> None:
    head = parsed(b"HTTP/1.0 426\r\nX-A :  b \r\nX-Long: one\r\n  two\r\n\tthree\r\nEmpty:\r\n\r\n")
    assert (head.status, head.reason) == (426, "")
    assert head.headers == [(b"X-A", b"b"), (b"X-Long", b"one two three"), (b"Empty", b"")]


def test_a_non_101_answer_keeps_its_body_after_the_head() -> None:
    data = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
    head = parsed(data)
    assert (head.status, head.reason, data[head.size :]) == (404, "Not Found", b"no")


# --- the checks of a 101 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (GOOD_101.replace(ACCEPT, b"x" * 28), "does not match"),
        (GOOD_101.replace(b"Upgrade: websocket\r\n", b""), "Upgrade"),
        (
            GOOD_101.replace(b"Connection: Upgrade", b"Connection: close"),
            "Connection: Upgrade",
        ),
        (
            GOOD_101.replace(b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n", b""),
            "without Sec-WebSocket-Accept",
        ),
        (
            GOOD_101[:-2] + b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n\r\n",
            "does not match",
        ),
        (
            GOOD_101[:-2] + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            "none offered",
        ),
        (
            GOOD_101[:-2] + b"Sec-WebSocket-Protocol: chat\r\n\r\n",
            "'chat'; offered: none",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", "status 200, not 101"),
    ],
)
def test_check_101_refuses(data: bytes, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_101(KEY, parsed(data))
    assert caught.value.cause == "upstream_bad_accept"
    assert words in caught.value.reason


def test_check_101_tokens_are_case_insensitive_and_lists() -> None:
    data = GOOD_101.replace(b"Upgrade: websocket", b"upgrade: WebSocket").replace(
        b"Connection: Upgrade", b"Connection: keep-alive, UPGRADE"
    )
    check_101(KEY, parsed(data))


def test_check_101_subprotocols() -> None:
    chosen = parsed(GOOD_101[:-2] + b"Sec-WebSocket-Protocol: v2\r\n\r\n")
    check_101(KEY, chosen, ("v1", "v2"))
    with pytest.raises(ProtocolError, match="offered: \\['v1'\\]"):
        check_101(KEY, chosen, ("v1",))
    twice = parsed(
        GOOD_101[:-2] + b"Sec-WebSocket-Protocol: v1\r\nSec-WebSocket-Protocol: v1\r\n\r\n"
    )
    with pytest.raises(ProtocolError, match="subprotocol"):
        check_101(KEY, twice, ("v1",))
    check_101(KEY, parsed(GOOD_101), ("v1",))  # selecting none is the server's right


# --- properties --------------------------------------------------------------------

TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
    min_size=1,
    max_size=20,
)
VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)
PATH = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-._~%?=&", max_size=30).map(
    lambda s: "/" + s
)
RESERVED = {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version"}


class _Request:
    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        self.complete = True


def server_side_key(request: bytes) -> bytes:
    """What the gateway makes of a request: httptools' head, then check_upgrade_request."""
    seen = _Request()
    parser = httptools.HttpRequestParser(seen)
    with pytest.raises(httptools.HttpParserUpgrade):
        parser.feed_data(request)
    version = parser.get_http_version()
    return check_upgrade_request(parser.get_method(), version, seen.headers)


@given(
    st.binary(min_size=16, max_size=16),
    PATH,
    TOKEN,
    st.lists(st.tuples(TOKEN, VALUE).filter(lambda h: h[0].lower() not in RESERVED), max_size=6),
    st.lists(TOKEN, max_size=3),
    st.none() | VALUE,
    st.lists(st.tuples(TOKEN, VALUE), max_size=4),
    st.integers(0, 400),
)
def test_round_trip_through_both_sides(
    nonce: bytes,
    path: str,
    host: str,
    headers: list[tuple[str, str]],
    subprotocols: list[str],
    origin: str | None,
    answer_headers: list[tuple[str, str]],
    cut: int,
) -> None:
    key = make_key(nonce)
    request = build_request(path, host, key, headers, origin=origin, subprotocols=subprotocols)
    assert server_side_key(request) == key
    extra = "".join(
        f"{name}: {value}\r\n"
        for name, value in answer_headers
        if not name.lower().startswith("sec-websocket")
        and name.lower() not in ("upgrade", "connection")
    )
    answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + b"Sec-WebSocket-Accept: "
        + accept_value(key)
        + b"\r\n"
        + extra.encode()
        + b"\r\n"
    )
    cut = min(cut, len(answer) - 1)
    assert parse_response_head(answer[:cut]) is None
    head = parsed(answer + FRAME)
    assert (answer + FRAME)[head.size :] == FRAME
    check_101(key, head, subprotocols)


@given(st.integers(100, 599), VALUE, st.lists(st.tuples(TOKEN, VALUE), max_size=8))
def test_head_round_trip(status: int, reason: str, headers: list[tuple[str, str]]) -> None:
    data = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    data += "\r\n"
    head = parse_response_head(data.encode())
    if 100 <= status < 200 and status != 101:
        assert head is None  # an interim answer: the final one is still to come
        return
    assert head is not None
    assert (head.status, head.reason, head.size) == (status, reason, len(data))
    assert head.headers == [(k.encode(), v.encode()) for k, v in headers]


@given(st.binary(max_size=300), st.integers(1, 400))
def test_any_bytes_parse_wait_or_raise_protocol_error(data: bytes, max_bytes: int) -> None:
    try:
        head = parse_response_head(data, max_bytes)
    except ProtocolError as exc:
        assert exc.cause in ("upstream_bad_response", "upstream_header_too_large")
        return
    if head is not None:
        assert 200 <= head.status <= 999 or head.status == 101, head
        assert head.size <= min(len(data), max_bytes)
        assert all(b":" not in name and name for name, _ in head.headers)
