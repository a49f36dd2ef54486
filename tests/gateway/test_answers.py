"""The gateway's own answers as bytes (gateway/answers.py): the close answer a browser can
read (101, accept, subprotocol echo, a close frame with its code and reason), the choice
between it and the explained HTTP answer, the client script, and the log lines' fields.
Literal bytes in, literal bytes out."""

from __future__ import annotations

import struct
from typing import Any, cast

import pytest

from wsgate.gateway.answers import (
    CLIENT_SCRIPT_TYPE,
    CLOSE_ANSWER_CODES,
    access_fields,
    close_answer,
    error_answer,
    error_fields,
    script_answer,
    wants_close_answer,
)
from wsgate.gateway.responses import error_response
from wsgate.gateway.states import Request
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import HeaderList

# RFC 6455 section 1.3's sample key and its accept value.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def handshake(*extra: tuple[bytes, bytes], key: bytes | None = KEY) -> Request:
    headers = HeaderList([(b"Host", b"gw.test"), (b"Upgrade", b"websocket"), *extra])
    return Request(
        b"GET", b"/chat", "1.1", headers, True, Framing.NONE, 10.0, ws_key=key, upgrade=True
    )


def head_and_frame(answer: bytes) -> tuple[list[bytes], bytes]:
    head, frame = answer.split(b"\r\n\r\n", 1)
    return head.split(b"\r\n"), frame


def test_a_queue_full_close_answer_byte_for_byte() -> None:
    answer = close_answer(handshake(), "overloaded_queue_full", 7)
    reason = b"retry-after=7; cause=overloaded_queue_full"
    assert (
        answer
        == (
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n"
            b"Retry-After: 7\r\n"
            b"X-Wsgate-Cause: overloaded_queue_full\r\n"
            b"Via: 1.1 wsgate\r\n"
            b"\r\n"
            # FIN + close, unmasked, payload length, 1013, the reason
             + bytes([0x88, 2 + len(reason)]) + struct.pack("!H", 1013) + reason
        )
    )


@pytest.mark.parametrize(
    ("cause", "code"),
    [
        ("overloaded_queue_full", 1013),
        ("overloaded_queue_timeout", 1013),
        ("no_healthy_upstream", 1013),
        ("out_of_file_descriptors", 1013),
        ("shutting_down", 1012),
        ("client_rate_limited", 1008),
    ],
)
def test_each_cause_has_its_close_code(cause: str, code: int) -> None:
    answer = close_answer(handshake(), cause, 3)
    assert answer is not None
    _, frame = head_and_frame(answer)
    assert frame[2:4] == struct.pack("!H", code)
    assert frame[4:] == f"retry-after=3; cause={cause}".encode()


def test_the_close_causes_are_exactly_these() -> None:
    assert set(CLOSE_ANSWER_CODES) == {
        "overloaded_queue_full",
        "overloaded_queue_timeout",
        "no_healthy_upstream",
        "out_of_file_descriptors",
        "shutting_down",
        "client_rate_limited",
    }


def test_a_cause_without_a_close_code_or_a_request_without_a_key_has_no_close_answer() -> None:
    assert close_answer(handshake(), "no_route", 3) is None
    assert close_answer(handshake(key=None), "overloaded_queue_full", 3) is None


def test_the_first_offered_subprotocol_is_echoed() -> None:
    request = handshake((b"Sec-WebSocket-Protocol", b" chat.v2 , chat.v1"))
    answer = close_answer(request, "shutting_down", 1)
    assert answer is not None
    lines, _ = head_and_frame(answer)
    assert lines[4] == b"Sec-WebSocket-Protocol: chat.v2"
    assert lines[5] == b"Retry-After: 1"


def test_no_subprotocol_line_when_none_is_offered_or_the_header_is_empty() -> None:
    for request in (handshake(), handshake((b"Sec-WebSocket-Protocol", b""))):
        answer = close_answer(request, "shutting_down", 1)
        assert answer is not None
        assert b"Sec-WebSocket-Protocol" not in answer


def test_the_reason_fits_the_123_bytes_of_a_close_frame() -> None:
    # The longest cause with the largest retry-after: the reason stays within 123 bytes,
    # the frame's payload within 125, and the header says the same day as the reason.
    answer = close_answer(handshake(), "overloaded_queue_timeout", 10**9)
    assert answer is not None
    lines, frame = head_and_frame(answer)
    assert b"Retry-After: 86400" in lines
    assert frame[1] == len(frame) - 2 <= 125
    assert frame[4:] == b"retry-after=86400; cause=overloaded_queue_timeout"
    for cause in CLOSE_ANSWER_CODES:
        answer = close_answer(handshake(), cause, 86_400)
        assert answer is not None
        assert len(head_and_frame(answer)[1]) - 4 <= 123


@pytest.mark.parametrize(
    ("origin", "overload_answer", "expected"),
    [
        (None, "http", False),
        (b"https://app.test", "http", False),
        (None, "close", True),
        (b"https://app.test", "close", True),
        (None, "auto", False),  # no Origin: not a browser
        (b"https://app.test", "auto", True),
    ],
)
def test_wants_close_answer(origin: bytes | None, overload_answer: str, expected: bool) -> None:
    extra = [(b"Origin", origin)] if origin is not None else []
    assert wants_close_answer(handshake(*extra), overload_answer) is expected


def test_a_plain_request_never_wants_a_close_answer() -> None:
    assert not wants_close_answer(handshake(key=None), "close")


def test_error_answer_is_the_close_answer_for_a_browser_with_a_retry_after() -> None:
    request = handshake((b"Origin", b"https://app.test"))
    answer = error_answer(request, "overloaded_queue_full", "Queue full.", 4, "auto")
    assert answer == close_answer(request, "overloaded_queue_full", 4)


def test_error_answer_is_http_without_a_retry_after_or_a_close_code() -> None:
    request = handshake((b"Origin", b"https://app.test"))
    no_hint = error_answer(request, "overloaded_queue_full", "Queue full.", None, "close")
    assert no_hint == error_response("overloaded_queue_full", "Queue full.")
    assert no_hint.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    no_code = error_answer(request, "no_route", "Host 'x'.", 2, "close")
    assert no_code.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"\r\nRetry-After: 2\r\n" in no_code


def test_error_answer_without_a_request_is_http() -> None:
    answer = error_answer(None, "shutting_down", "", 3, "close")
    assert answer == error_response("shutting_down", "", retry_after_s=3)
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")


def test_an_unsupported_version_names_the_one_spoken() -> None:
    answer = error_answer(handshake(), "unsupported_version", "Version 8.", None, "http")
    assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in answer


def test_script_answer_get_and_head() -> None:
    script = b"export class C {}\n"
    get = script_answer(script, head_only=False, keep_alive=True)
    assert get == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/javascript; charset=utf-8\r\n"
        b"Content-Length: 18\r\n"
        b"Cache-Control: public, max-age=300\r\n"
        b"Connection: keep-alive\r\n\r\n" + script
    )
    head = script_answer(script, head_only=True, keep_alive=False)
    assert head == get.split(b"\r\n\r\n")[0].replace(b"keep-alive", b"close") + b"\r\n\r\n"
    assert CLIENT_SCRIPT_TYPE == "text/javascript; charset=utf-8"


class Named:
    def __init__(self, name: str) -> None:
        self.name = name
        self.config = self  # a pool's config has the pool's name


def test_error_fields_without_a_request() -> None:
    assert error_fields(None, "192.0.2.7", "Bad head.", 12.0) == {
        "request_id": None,
        "client": "192.0.2.7",
        "method": None,
        "target": None,
        "pool": None,
        "backend": None,
        "detail": "Bad head.",
        "connect_ms": None,
        "total_ms": None,
    }


def test_error_fields_of_a_request() -> None:
    request = handshake()
    request.request_id = "abc"
    request.pool = cast(Any, Named("app"))
    request.backend = cast(Any, Named("127.0.0.1:9001"))
    request.connect_ms = 1.26
    assert error_fields(request, "192.0.2.7", "Timed out.", 10.5) == {
        "request_id": "abc",
        "client": "192.0.2.7",
        "method": "GET",
        "target": "/chat",
        "pool": "app",
        "backend": "127.0.0.1:9001",
        "detail": "Timed out.",
        "connect_ms": 1.3,
        "total_ms": 500.0,
    }


def test_access_fields_before_and_after_the_head_was_sent() -> None:
    request = handshake()
    request.request_id = "abc"
    request.status = 101
    fields = access_fields(request, "192.0.2.7", 10.25)
    assert fields == {
        "request_id": "abc",
        "client": "192.0.2.7",
        "method": "GET",
        "target": "/chat",
        "status": 101,
        "pool": None,
        "backend": None,
        "upgrade": True,
        "connect_ms": None,
        "response_ms": None,
        "total_ms": 250.0,
    }
    request.head_sent = True
    request.head_sent_at = 10.125
    assert access_fields(request, "192.0.2.7", 10.25)["response_ms"] == 125.0
    request.ws_key = None
    assert access_fields(request, "192.0.2.7", 10.25)["upgrade"] is False
