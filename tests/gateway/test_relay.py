"""The bytes of a proxied exchange (gateway/relay.py): which requests may go again, the
head and body the backend gets, the answer's head framed for the client with whether each
connection stays open, and the answer's end. Literal requests in, literal bytes out."""

from __future__ import annotations

import pytest

from wsgate.gateway.relay import (
    IDEMPOTENT_METHODS,
    answer_end,
    answer_head,
    replayable,
    stale_connection_retry,
    upstream_body,
    upstream_head,
)
from wsgate.gateway.states import Request
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import HeaderList


def request(
    method: bytes = b"GET",
    *headers: tuple[bytes, bytes],
    version: str = "1.1",
    keep_alive: bool = True,
    framing: Framing = Framing.NONE,
    ws_key: bytes | None = None,
) -> Request:
    return Request(
        method,
        b"/a?b=1",
        version,
        HeaderList(headers),
        keep_alive,
        framing,
        0.0,
        ws_key=ws_key,
        upgrade=ws_key is not None,
    )


def sized(length: int = 2) -> HeaderList:
    return HeaderList([(b"Content-Length", b"%d" % length)])


CHUNKED = HeaderList([(b"Transfer-Encoding", b"chunked")])
UNFRAMED = HeaderList()  # no length, not chunked: the body runs to the connection's end


# -- which requests may be sent again --------------------------------------------------
def test_the_idempotent_methods_of_rfc_9110() -> None:
    assert {b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"} == IDEMPOTENT_METHODS


@pytest.mark.parametrize(
    ("method", "framing", "head_sent", "expected"),
    [
        (b"POST", Framing.LENGTH, False, True),  # nothing went out: anything goes again
        (b"GET", Framing.NONE, True, True),
        (b"PUT", Framing.NONE, True, True),
        (b"POST", Framing.NONE, True, False),  # not idempotent
        (b"PUT", Framing.LENGTH, True, False),  # its body was streamed, not kept
        (b"GET", Framing.CHUNKED, True, False),
    ],
)
def test_replayable(method: bytes, framing: Framing, head_sent: bool, expected: bool) -> None:
    r = request(method, framing=framing)
    r.head_sent = head_sent
    assert replayable(r) is expected


def test_a_stale_keep_alive_connection_is_retried_once() -> None:
    r = request()
    assert not stale_connection_retry(r)  # nothing sent yet: not a stale connection
    r.head_sent = True
    assert stale_connection_retry(r)  # sent on a reused connection (no connect time)
    r.stale_retry_done = True
    assert not stale_connection_retry(r)  # once only


def test_no_stale_retry_on_a_fresh_connection_a_body_or_a_post() -> None:
    fresh = request()
    fresh.head_sent, fresh.connect_ms = True, 0.4
    with_body = request(b"PUT", framing=Framing.LENGTH)
    with_body.head_sent = True
    post = request(b"POST")
    post.head_sent = True
    assert [stale_connection_retry(r) for r in (fresh, with_body, post)] == [False] * 3


# -- towards the backend ---------------------------------------------------------------
def test_upstream_head_of_a_plain_request_with_a_made_request_id() -> None:
    r = request(b"GET", (b"Host", b"gw.test"), (b"X-Forwarded-For", b"198.51.100.1"))
    r.request_id, r.request_id_made = "abc", True
    assert upstream_head(r, "192.0.2.7", "http", "127.0.0.1:9001") == (
        b"GET /a?b=1 HTTP/1.1\r\n"
        b"Host: gw.test\r\n"
        b"X-Request-Id: abc\r\n"
        b"X-Forwarded-For: 198.51.100.1, 192.0.2.7\r\n"
        b"X-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: gw.test\r\n"
        b'Forwarded: for=192.0.2.7;proto=http;host="gw.test"\r\n'
        b"\r\n"
    )


def test_a_clients_request_id_is_passed_on_not_added() -> None:
    r = request(b"GET", (b"Host", b"gw.test"), (b"X-Request-Id", b"client-1"))
    r.request_id = "client-1"
    head = upstream_head(r, "192.0.2.7", "https", "127.0.0.1:9001")
    assert head.count(b"X-Request-Id") == 1 and b"X-Request-Id: client-1\r\n" in head
    assert b"X-Forwarded-Proto: https\r\n" in head


def test_upstream_head_of_an_upgrade_without_a_host() -> None:
    r = request(
        b"GET",
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", b"k"),
        (b"Sec-WebSocket-Version", b"13"),
        ws_key=b"k",
    )
    assert upstream_head(r, "192.0.2.7", "http", "127.0.0.1:9001") == (
        b"GET /a?b=1 HTTP/1.1\r\n"
        b"Sec-WebSocket-Key: k\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Host: 127.0.0.1:9001\r\n"  # the backend's address when the client sent none
        b"X-Forwarded-For: 192.0.2.7\r\n"
        b"X-Forwarded-Proto: http\r\n"
        b"Forwarded: for=192.0.2.7;proto=http\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"\r\n"
    )


def test_a_chunked_body_is_chunked_again() -> None:
    r = request(b"POST", (b"Host", b"h"), (b"Transfer-Encoding", b"chunked"))
    r.framing = Framing.CHUNKED
    assert upstream_head(r, "192.0.2.7", "http", "d").endswith(
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    assert upstream_body(r, b"hello world, sixteen") == b"14\r\nhello world, sixteen\r\n"
    assert upstream_body(r, b"") == b""  # an empty chunk would end the body


def test_a_sized_body_passes_as_it_is() -> None:
    r = request(b"POST", framing=Framing.LENGTH)
    assert upstream_body(r, b"abc") == b"abc"
    assert upstream_body(r, b"") == b""


# -- towards the client ----------------------------------------------------------------
def test_a_sized_answer_to_http_1_1_keeps_both_connections() -> None:
    r = request()
    head = answer_head(r, 200, b"OK", sized(), True, True)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    assert (r.status, r.close_after, r.upstream_reusable) == (200, False, True)
    assert (r.upstream_framing, r.framing_out) == (Framing.LENGTH, Framing.LENGTH)
    assert answer_end(r) == b""


def test_keep_alive_not_allowed_closes_the_client_but_reuses_the_backend() -> None:
    r = request()  # e.g. the gateway drains
    head = answer_head(r, 200, b"OK", sized(), True, False)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    assert (r.close_after, r.upstream_reusable) == (True, True)


def test_a_backend_that_closes_is_not_reused() -> None:
    r = request()
    answer_head(r, 200, b"OK", sized(), False, True)
    assert (r.close_after, r.upstream_reusable) == (False, False)


def test_http_1_0_without_keep_alive_is_closed_after() -> None:
    r = request(version="1.0", keep_alive=False)
    head = answer_head(r, 200, b"OK", sized(), True, True)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    assert (r.close_after, r.upstream_reusable) == (True, True)


def test_http_1_0_with_keep_alive_is_told_so() -> None:
    r = request(b"GET", (b"Connection", b"keep-alive"), version="1.0")
    head = answer_head(r, 200, b"OK", sized(), True, True)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n"
    assert r.close_after is False


def test_a_chunked_answer_to_http_1_0_runs_to_the_close() -> None:
    # HTTP/1.0 knows no chunks: the body is sent bare and the end is the close.
    r = request(b"GET", (b"Connection", b"keep-alive"), version="1.0")
    head = answer_head(r, 200, b"OK", CHUNKED, True, True)
    assert head == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    assert (r.upstream_framing, r.framing_out) == (Framing.CHUNKED, Framing.CLOSE)
    assert (r.close_after, r.upstream_reusable) == (True, True)
    assert answer_end(r) == b""


def test_a_close_delimited_answer_to_http_1_1_is_chunked_for_the_client() -> None:
    r = request()
    head = answer_head(r, 200, b"OK", UNFRAMED, True, True)
    assert head == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert (r.upstream_framing, r.framing_out) == (Framing.CLOSE, Framing.CHUNKED)
    # The client's connection lives on; the backend's ended the body, so it is done.
    assert (r.close_after, r.upstream_reusable) == (False, False)
    assert answer_end(r) == b"0\r\n\r\n"


def test_a_chunked_answer_to_http_1_1_stays_chunked_and_ends_with_the_last_chunk() -> None:
    r = request()
    head = answer_head(r, 200, b"OK", CHUNKED, True, True)
    assert head == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert (r.close_after, r.upstream_reusable) == (False, True)
    assert answer_end(r) == b"0\r\n\r\n"


def test_an_upgrade_answered_without_101_closes_both_connections() -> None:
    r = request(b"GET", (b"Upgrade", b"websocket"), ws_key=b"k")
    head = answer_head(r, 400, b"Bad", sized(0), True, True)
    assert head == b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert (r.status, r.close_after, r.upstream_reusable) == (400, True, False)


def test_an_answer_to_head_has_no_body_whatever_its_length() -> None:
    r = request(b"HEAD")
    head = answer_head(r, 200, b"OK", sized(20), True, True)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"
    assert (r.upstream_framing, r.framing_out) == (Framing.NONE, Framing.NONE)
    assert (r.close_after, r.upstream_reusable) == (False, True)
