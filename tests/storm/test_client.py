"""The handshake client's pure parts, fed literal bytes."""

from __future__ import annotations

import errno

import pytest

from wsgate.storm import client, stats
from wsgate.storm.client import Target

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_accept_matches_the_rfc_example() -> None:
    assert client.accept_for(KEY) == ACCEPT


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


@pytest.mark.parametrize(
    ("head", "outcome"),
    [
        (f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n", "101"),
        ("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n", "bad_accept"),
        ("HTTP/1.1 101 Switching Protocols\r\n\r\n", "bad_accept"),
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
        ("HTTP/1.1 abc\r\n\r\n", "bad_response"),
        ("HTTP/2 200\r\n\r\n", "bad_response"),
    ],
)
def test_classify(head: str, outcome: str) -> None:
    assert client.classify(head.encode("latin-1"), KEY) == outcome


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
