"""The handshake client's pure parts, fed literal bytes."""

from __future__ import annotations

import asyncio
import errno
from dataclasses import replace

import pytest

from wsgate.protocol.client_handshake import parse_response_head
from wsgate.protocol.errors import ProtocolError
from wsgate.storm import client, stats
from wsgate.storm.client import Target

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
UPGRADED = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
SWITCHING = "HTTP/1.1 101 Switching Protocols\r\n"
LOCAL = Target("127.0.0.1", 9)


def test_upgrade_request_bytes() -> None:
    target = Target(
        "127.0.0.1", 8080, "/chat?room=1", "example.test:8080", origin="http://a.test",
        subprotocol="chat.v1", headers=(("X-A", "1"),),
    )  # fmt: skip
    assert client.upgrade_request(target, KEY) == (
        b"GET /chat?room=1 HTTP/1.1\r\n"
        b"Host: example.test:8080\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://a.test\r\n"
        b"Sec-WebSocket-Protocol: chat.v1\r\n"
        b"X-A: 1\r\n\r\n"
    )


def outcome_of(data: bytes, target: Target = LOCAL) -> str:
    """What `open_connection` makes of a response head that arrived in one read."""
    try:
        head = parse_response_head(data, client.MAX_HEAD_BYTES)
    except ProtocolError as exc:
        return client.error_outcome(exc)
    assert head is not None
    return client.classify(head, KEY, target)


@pytest.mark.parametrize(
    ("head", "outcome"),
    [
        (f"{SWITCHING}{UPGRADED}Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n", "101"),
        (f"{SWITCHING}{UPGRADED}Sec-WebSocket-Accept: nope\r\n\r\n", "bad_accept"),
        (f"{SWITCHING}{UPGRADED}\r\n", "bad_accept"),
        # A 101 that a browser would fail counts as failed here too.
        (f"{SWITCHING}Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n", "bad_accept"),
        (
            f"HTTP/1.1 101 x\r\n{UPGRADED}Sec-WebSocket-Accept: {ACCEPT}\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            "bad_accept",
        ),
        (
            f"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 x\r\n{UPGRADED}"
            f"Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n",
            "101",
        ),
        ("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", "502"),
        (
            "HTTP/1.1 504 Gateway Timeout\r\nx-wsgate-cause:  upstream_handshake_timeout \r\n\r\n",
            "504 upstream_handshake_timeout",
        ),
        ("HTTP/1.0 503 Service Unavailable\r\n\r\n", "503 (no Retry-After)"),
        ("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\n\r\n", "503"),
        (
            "HTTP/1.1 503 x\r\nX-Wsgate-Cause: overloaded_queue_full\r\nretry-after: 7\r\n\r\n",
            "503 overloaded_queue_full",
        ),
        ("HTTP/1.1 429 Too Many Requests\r\n\r\n", "429 (no Retry-After)"),
        ("SSH-2.0-OpenSSH_9.6\r\n\r\n", "bad_response"),
        ("SSH-2.0-OpenSSH_9.6", "bad_response"),  # known before the head could end
        ("HTTP/1.1 abc\r\n\r\n", "bad_response"),
        ("HTTP/2 200\r\n\r\n", "bad_response"),
        ("HTTP/1.1 200 OK\r\nX: " + "a" * client.MAX_HEAD_BYTES + "\r\n\r\n", "bad_response"),
    ],
)  # fmt: skip
def test_classify(head: str, outcome: str) -> None:
    assert outcome_of(head.encode("latin-1")) == outcome


def test_the_offered_subprotocol_may_be_selected() -> None:
    head = (
        f"HTTP/1.1 101 x\r\n{UPGRADED}Sec-WebSocket-Accept: {ACCEPT}\r\n"
        "Sec-WebSocket-Protocol: chat.v1\r\n\r\n"
    ).encode()
    assert outcome_of(head) == "bad_accept"
    assert outcome_of(head, replace(LOCAL, subprotocol="chat.v1")) == "101"


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (TimeoutError(), stats.TIMEOUT),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), stats.REFUSED),
        (ConnectionResetError(errno.ECONNRESET, "reset"), stats.RESET),
        (BrokenPipeError(errno.EPIPE, "pipe"), stats.RESET),
        (OSError(errno.EADDRNOTAVAIL, "no port"), "error EADDRNOTAVAIL"),
        (ValueError("odd"), "error ValueError"),
    ],
)
def test_error_outcome(exc: BaseException, outcome: str) -> None:
    assert client.error_outcome(exc) == outcome


def test_target_uri_keeps_path_and_query() -> None:
    uri = Target("127.0.0.1", 9, "/a?b=1").uri()
    assert (uri.host, uri.port, uri.path, uri.query, uri.secure) == (
        "127.0.0.1",
        9,
        "/a",
        "b=1",
        False,
    )


def test_wire_reads_a_head_in_pieces_and_keeps_the_frames_after_it() -> None:
    loop = asyncio.new_event_loop()
    try:
        wire = client._Wire(loop)
        head = f"{SWITCHING}{UPGRADED}Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n".encode()
        frames = b"\x81\x04\r\n\r\n\x81\x01x"  # frames that hold a head's end
        for byte in range(len(head) - 1):
            wire.data_received(head[byte : byte + 1])
            assert not wire.head.done()
        wire.data_received(head[-1:] + frames[:3])
        wire.data_received(frames[3:])
        assert wire.head.result().status == 101
        assert bytes(wire.buffer) == frames
    finally:
        loop.close()


def test_wire_fails_the_head_on_garbage() -> None:
    loop = asyncio.new_event_loop()
    try:
        wire = client._Wire(loop)
        wire.data_received(b"SSH-2.0")
        assert client.error_outcome(wire.head.exception() or Exception()) == stats.BAD_RESPONSE
    finally:
        loop.close()


def test_a_target_header_replaces_the_field_of_the_same_name() -> None:
    target = replace(LOCAL, headers=(("host", "other.test"), ("X-A", "1")))
    request = client.upgrade_request(target, KEY)
    assert request.startswith(b"GET / HTTP/1.1\r\nhost: other.test\r\nUpgrade: websocket\r\n")
    assert request.count(b"ost: ") == 1
    assert request.endswith(b"\r\nX-A: 1\r\n\r\n")


def test_each_request_carries_its_own_key() -> None:
    other = b"AQIDBAUGBwgJCgsMDQ4PEA=="
    assert client.upgrade_request(LOCAL, KEY).replace(KEY, other) == (
        client.upgrade_request(LOCAL, other)
    )
    own_key = replace(LOCAL, headers=(("Sec-WebSocket-Key", "fixed"),))
    assert b"Sec-WebSocket-Key: fixed\r\n" in client.upgrade_request(own_key, KEY)
