"""The answers the gateway makes itself, as bytes, and their log lines. Pure.

An error answer is an explained HTTP response (responses.py). A WebSocket handshake
turned away for overload, a shutdown or a rate limit may instead be answered the way a
browser can read (the `WebSocket` API hides a failed handshake's status and headers):
the handshake completed by the gateway itself, never touching a backend, and at once a
close frame with 1013 (try again later), 1012 (service restart) or 1008 (policy
violation) and the reason "retry-after=N; cause=CODE" (protocol/close_reason.py).
"""

from __future__ import annotations

from typing import Any

from wsgate.gateway.responses import PROXY_NAME, error_response
from wsgate.gateway.states import Request, ms
from wsgate.protocol.close_reason import MAX_RETRY_AFTER_S, format_close_reason
from wsgate.protocol.frames import (
    CLOSE_POLICY_VIOLATION,
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN_LATER,
    close_frame,
)
from wsgate.protocol.handshake import accept_value
from wsgate.protocol.headers import get_one

# The causes a close answer may stand for, with its close code: each comes with a
# Retry-After, so a client knows when to come back.
CLOSE_ANSWER_CODES: dict[str, int] = {
    "overloaded_queue_full": CLOSE_TRY_AGAIN_LATER,
    "overloaded_queue_timeout": CLOSE_TRY_AGAIN_LATER,
    "no_healthy_upstream": CLOSE_TRY_AGAIN_LATER,
    "out_of_file_descriptors": CLOSE_TRY_AGAIN_LATER,
    "shutting_down": CLOSE_SERVICE_RESTART,
    "client_rate_limited": CLOSE_POLICY_VIOLATION,
}

CLIENT_SCRIPT_TYPE = "text/javascript; charset=utf-8"


def wants_close_answer(request: Request, overload_answer: str) -> bool:
    """Whether a turned-away handshake of `request` gets the close answer: "close", or
    "auto" and an Origin header (browsers send one on every WebSocket handshake)."""
    if request.ws_key is None or overload_answer == "http":
        return False
    return overload_answer == "close" or get_one(request.headers, b"origin") is not None


def close_answer(request: Request, cause: str, retry_after_s: int) -> bytes | None:
    """The 101 and the close frame for a turned-away handshake, or None when `cause` has
    no close answer (the HTTP error answer then)."""
    code = CLOSE_ANSWER_CODES.get(cause)
    if code is None or request.ws_key is None:
        return None
    lines = [
        b"HTTP/1.1 101 Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + accept_value(request.ws_key),
    ]
    offered = get_one(request.headers, b"sec-websocket-protocol")
    if offered:
        # Some clients fail a handshake whose answer picks none of their subprotocols;
        # the first one offered costs nothing, as the connection closes at once.
        lines.append(b"Sec-WebSocket-Protocol: " + offered.split(b",", 1)[0].strip())
    # The same figure as the close reason's, which a day bounds.
    lines.append(b"Retry-After: %d" % min(retry_after_s, MAX_RETRY_AFTER_S))
    lines.append(f"X-Wsgate-Cause: {cause}".encode())
    lines.append(f"Via: 1.1 {PROXY_NAME}".encode())
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    return head + close_frame(code, format_close_reason(retry_after_s, cause))


def error_answer(
    request: Request | None,
    cause: str,
    detail: str,
    retry_after_s: int | None,
    overload_answer: str,
) -> bytes:
    """What the client gets when the gateway turns `request` away."""
    if (
        request is not None
        and retry_after_s is not None
        and wants_close_answer(request, overload_answer)
    ):
        answer = close_answer(request, cause, retry_after_s)
        if answer is not None:
            return answer
    extra: tuple[tuple[str, str], ...] = ()
    if cause == "unsupported_version":
        extra = (("Sec-WebSocket-Version", "13"),)
    return error_response(cause, detail, retry_after_s=retry_after_s, extra_headers=extra)


def script_answer(script: bytes, *, head_only: bool, keep_alive: bool) -> bytes:
    """The answer to GET (or HEAD) of the client script's path."""
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Content-Type: {CLIENT_SCRIPT_TYPE}\r\n"
        f"Content-Length: {len(script)}\r\n"
        "Cache-Control: public, max-age=300\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode()
    return head if head_only else head + script


def error_fields(
    request: Request | None, client_ip: str, detail: str, now: float
) -> dict[str, Any]:
    """The fields of an error's log line."""
    if request is None:
        return {
            "request_id": None,
            "client": client_ip,
            "method": None,
            "target": None,
            "pool": None,
            "backend": None,
            "detail": detail,
            "connect_ms": None,
            "total_ms": None,
        }
    return {
        "request_id": request.request_id,
        "client": client_ip,
        "method": request.method.decode("latin-1"),
        "target": request.target.decode("latin-1"),
        "pool": request.pool.config.name if request.pool else None,
        "backend": request.backend.name if request.backend else None,
        "detail": detail,
        "connect_ms": ms(request.connect_ms),
        "total_ms": ms((now - request.received_at) * 1000),
    }


def access_fields(request: Request, client_ip: str, now: float) -> dict[str, Any]:
    """The fields of a request's access log line."""
    return {
        "request_id": request.request_id,
        "client": client_ip,
        "method": request.method.decode("latin-1"),
        "target": request.target.decode("latin-1"),
        "status": request.status,
        "pool": request.pool.config.name if request.pool else None,
        "backend": request.backend.name if request.backend else None,
        "upgrade": request.ws_key is not None,
        "connect_ms": ms(request.connect_ms),
        "response_ms": ms((now - request.head_sent_at) * 1000) if request.head_sent else None,
        "total_ms": ms((now - request.received_at) * 1000),
    }
