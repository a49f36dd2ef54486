"""The bytes of a proxied exchange, both ways, and which requests may be sent again. Pure.

The `Exchange` decides when; these say what: the head the backend gets, a body chunk
framed for its side, the answer's head framed for the client (and whether the
connections stay open after it), and whether a request may go to another backend.
"""

from __future__ import annotations

from wsgate.gateway.states import Request
from wsgate.protocol.forward import (
    Framing,
    client_framing,
    forward_request_head,
    response_framing,
    response_head,
)
from wsgate.protocol.headers import Headers

# RFC 9110 section 9.2.2: requests that may be sent again without harm.
IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


def replayable(request: Request) -> bool:
    """Whether another backend may get this request: always if nothing was sent yet;
    after the head went out, only an idempotent request without a body (the body's bytes
    were streamed, not kept)."""
    if not request.head_sent:
        return True
    return request.framing is Framing.NONE and request.method in IDEMPOTENT_METHODS


def stale_connection_retry(request: Request) -> bool:
    """A reused keep-alive connection that the backend had just closed: worth one retry on
    a fresh connection, as nothing reached the backend's application."""
    return (
        request.head_sent
        and not request.stale_retry_done
        and request.framing is Framing.NONE
        and request.connect_ms is None
        and request.method in IDEMPOTENT_METHODS
    )


def upstream_head(request: Request, client_ip: str, scheme: str, default_host: str) -> bytes:
    """The request's head as the backend gets it."""
    return forward_request_head(
        request.method,
        request.target,
        request.headers,
        client_ip=client_ip,
        scheme=scheme,
        websocket=request.ws_key is not None,
        framing=request.framing,
        default_host=default_host,
        request_id=request.request_id.encode() if request.request_id_made else None,
    )


def upstream_body(request: Request, body: bytes) -> bytes:
    """A piece of the request body as the backend gets it (re-chunked when chunked)."""
    if request.framing is Framing.CHUNKED:
        return b"%x\r\n" % len(body) + body + b"\r\n" if body else b""
    return body


def answer_head(
    request: Request,
    status: int,
    reason: bytes,
    headers: Headers,
    upstream_keep_alive: bool,
    keep_allowed: bool,
) -> bytes:
    """The backend's answer head framed for the client. Records on `request` how the body
    is framed both ways and whether each connection stays open after it."""
    upstream_framing = response_framing(request.method, status, headers)
    framing = client_framing(upstream_framing, request.version)
    keep = (
        request.keep_alive
        and framing is not Framing.CLOSE
        # An upgrade request that was not switched: the client may have sent frames.
        and not request.upgrade
        and keep_allowed
    )
    request.status = status
    request.close_after = not keep
    request.upstream_framing = upstream_framing
    request.framing_out = framing
    # A connection that carried an upgrade request (refused, since this is not a 101) is
    # never reused: the backend and the gateway may disagree on where that request ended,
    # and the next request on it would be read as its continuation.
    request.upstream_reusable = (
        upstream_keep_alive and upstream_framing is not Framing.CLOSE and not request.upgrade
    )
    return response_head(
        status, reason, headers, framing=framing, keep_alive=keep, client_version=request.version
    )


def answer_end(request: Request) -> bytes:
    """What ends the answer's body for the client: the last chunk, when chunked."""
    return b"0\r\n\r\n" if request.framing_out is Framing.CHUNKED else b""
