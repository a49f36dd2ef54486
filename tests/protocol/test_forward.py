from __future__ import annotations

import pytest

from wsgate.protocol.forward import (
    Framing,
    client_framing,
    forward_request_head,
    request_framing,
    response_framing,
    response_head,
)
from wsgate.protocol.headers import without_hop_by_hop


def parse_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    assert head.endswith(b"\r\n\r\n")
    first, *lines = head[:-4].split(b"\r\n")
    fields = []
    for line in lines:
        name, value = line.split(b": ", 1)
        fields.append((name, value))
    return first, fields


def test_websocket_request_head_redeclares_upgrade_and_adds_forwarding() -> None:
    head = forward_request_head(
        b"GET",
        b"/ws?room=1",
        [
            (b"Host", b"chat.example"),
            (b"Connection", b"keep-alive, Upgrade, X-Secret"),
            (b"Upgrade", b"websocket"),
            (b"X-Secret", b"hop"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Sec-WebSocket-Key", b"k"),
            (b"X-Forwarded-For", b"203.0.113.9"),
            (b"X-Forwarded-Proto", b"https"),
        ],
        client_ip="127.0.0.1",
        scheme="http",
        websocket=True,
        framing=Framing.NONE,
        default_host="127.0.0.1:9000",
    )
    first, headers = parse_head(head)
    assert first == b"GET /ws?room=1 HTTP/1.1"
    names = [name.lower() for name, _ in headers]
    assert b"x-secret" not in names and b"keep-alive" not in names
    assert (b"X-Forwarded-For", b"203.0.113.9, 127.0.0.1") in headers
    assert (b"X-Forwarded-Proto", b"http") in headers
    assert (b"X-Forwarded-Host", b"chat.example") in headers
    assert (b"Forwarded", b'for=127.0.0.1;proto=http;host="chat.example"') in headers
    assert headers[-2:] == [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
    assert names.count(b"connection") == 1


def test_ipv6_client_is_quoted_in_forwarded_and_missing_host_is_added() -> None:
    head = forward_request_head(
        b"POST",
        b"/",
        [(b"Transfer-Encoding", b"chunked"), (b"Forwarded", b"for=192.0.2.1")],
        client_ip="::1",
        scheme="http",
        websocket=False,
        framing=Framing.CHUNKED,
        default_host="backend:80",
    )
    _, headers = parse_head(head)
    assert (b"Host", b"backend:80") in headers
    assert (b"Forwarded", b'for=192.0.2.1, for="[::1]";proto=http') in headers
    assert (b"Transfer-Encoding", b"chunked") in headers


def test_hop_by_hop_removal_keeps_order() -> None:
    kept = without_hop_by_hop([(b"A", b"1"), (b"TE", b"trailers"), (b"B", b"2")])
    assert kept == [(b"A", b"1"), (b"B", b"2")]


@pytest.mark.parametrize(
    ("method", "status", "headers", "expected"),
    [
        (b"HEAD", 200, [(b"Content-Length", b"10")], Framing.NONE),
        (b"GET", 204, [], Framing.NONE),
        (b"GET", 304, [(b"Content-Length", b"10")], Framing.NONE),
        (b"GET", 200, [(b"Transfer-Encoding", b"gzip, chunked")], Framing.CHUNKED),
        (b"GET", 200, [(b"Content-Length", b"3")], Framing.LENGTH),
        (b"GET", 200, [], Framing.CLOSE),
    ],
)
def test_response_framing(
    method: bytes, status: int, headers: list[tuple[bytes, bytes]], expected: Framing
) -> None:
    assert response_framing(method, status, headers) is expected


def test_request_framing() -> None:
    assert request_framing([(b"Content-Length", b"0")]) is Framing.LENGTH
    assert request_framing([(b"transfer-encoding", b"chunked")]) is Framing.CHUNKED
    assert request_framing([]) is Framing.NONE


def test_client_framing_rechunks_for_http11_only() -> None:
    assert client_framing(Framing.CLOSE, "1.1") is Framing.CHUNKED
    assert client_framing(Framing.CLOSE, "1.0") is Framing.CLOSE
    assert client_framing(Framing.CHUNKED, "1.0") is Framing.CLOSE
    assert client_framing(Framing.LENGTH, "1.0") is Framing.LENGTH


def test_response_head_rechunked_drops_content_length_and_says_close() -> None:
    head = response_head(
        200,
        b"OK",
        [(b"Content-Length", b"5"), (b"Connection", b"keep-alive"), (b"X-A", b"1")],
        framing=Framing.CHUNKED,
        keep_alive=False,
        client_version="1.1",
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
