"""Request and response heads as a reverse proxy rewrites them (RFC 9110 section 7.6,
RFC 7239 Forwarded, the X-Forwarded-* conventions). Pure: bytes in, bytes out."""

from __future__ import annotations

import enum

from wsgate.protocol.headers import Headers, get_one, tokens, without_hop_by_hop

_FORWARDING = frozenset({b"x-forwarded-proto", b"x-forwarded-host"})


class Framing(enum.Enum):
    """How a message body ends (RFC 9112 section 6.3)."""

    NONE = "none"  # no body: HEAD answers, 1xx, 204, 304, requests without one
    LENGTH = "length"  # Content-Length
    CHUNKED = "chunked"  # Transfer-Encoding: chunked
    CLOSE = "close"  # the body runs to the end of the connection (responses only)


def request_framing(headers: Headers) -> Framing:
    if b"chunked" in tokens(headers, b"transfer-encoding"):
        return Framing.CHUNKED
    if get_one(headers, b"content-length") is not None:
        return Framing.LENGTH
    return Framing.NONE


def response_framing(method: bytes, status: int, headers: Headers) -> Framing:
    if method == b"HEAD" or status < 200 or status in (204, 304):
        return Framing.NONE
    if b"chunked" in tokens(headers, b"transfer-encoding"):
        return Framing.CHUNKED
    if get_one(headers, b"content-length") is not None:
        return Framing.LENGTH
    return Framing.CLOSE


def client_framing(upstream: Framing, client_version: str) -> Framing:
    """Framing towards the client: re-chunk bodies of unknown length for HTTP/1.1
    clients so that their connection can stay open."""
    if upstream in (Framing.CHUNKED, Framing.CLOSE):
        return Framing.CHUNKED if client_version == "1.1" else Framing.CLOSE
    return upstream


def _forwarded_node(ip: str) -> str:
    # RFC 7239 section 6: IPv6 addresses are bracketed and the value quoted.
    return f'"[{ip}]"' if ":" in ip else ip


def forward_request_head(
    method: bytes,
    target: bytes,
    headers: Headers,
    *,
    client_ip: str,
    scheme: str,
    websocket: bool,
    framing: Framing,
    default_host: str,
    request_id: bytes | None = None,
) -> bytes:
    """The request head to send upstream: hop-by-hop fields dropped, forwarding fields
    added, and the upgrade (or the body framing) declared anew. `request_id`, when given,
    goes out as X-Request-Id (for a request that came without one)."""
    kept = without_hop_by_hop(headers)
    lines = [method + b" " + target + b" HTTP/1.1"]
    host = get_one(headers, b"host")
    xff: bytes | None = None
    forwarded: bytes | None = None
    for name, value in kept:
        lower = name.lower()
        if lower == b"x-forwarded-for":
            xff = value if xff is None else xff + b", " + value
        elif lower == b"forwarded":
            forwarded = value if forwarded is None else forwarded + b", " + value
        elif lower not in _FORWARDING:
            lines.append(name + b": " + value)
    if host is None:
        lines.append(b"Host: " + default_host.encode())
    if request_id is not None:
        lines.append(b"X-Request-Id: " + request_id)
    ip = client_ip.encode()
    lines.append(b"X-Forwarded-For: " + (xff + b", " + ip if xff else ip))
    lines.append(b"X-Forwarded-Proto: " + scheme.encode())
    if host is not None:
        lines.append(b"X-Forwarded-Host: " + host)
    element = f"for={_forwarded_node(client_ip)};proto={scheme}".encode()
    if host is not None and b'"' not in host:
        element += b';host="' + host + b'"'
    lines.append(b"Forwarded: " + (forwarded + b", " + element if forwarded else element))
    if websocket:
        lines.append(b"Upgrade: websocket")
        lines.append(b"Connection: Upgrade")
    elif framing is Framing.CHUNKED:
        lines.append(b"Transfer-Encoding: chunked")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def response_head(
    status: int,
    reason: bytes,
    headers: Headers,
    *,
    framing: Framing,
    keep_alive: bool,
    client_version: str,
) -> bytes:
    """A backend's response head as relayed to the client."""
    lines = [b"HTTP/1.1 %d " % status + reason]
    for name, value in without_hop_by_hop(headers):
        if framing is Framing.CHUNKED and name.lower() == b"content-length":
            continue
        lines.append(name + b": " + value)
    if framing is Framing.CHUNKED:
        lines.append(b"Transfer-Encoding: chunked")
    if not keep_alive:
        lines.append(b"Connection: close")
    elif client_version == "1.0":
        lines.append(b"Connection: keep-alive")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def switching_protocols_head(reason: bytes, headers: Headers) -> bytes:
    """A backend's 101 relayed as it came: its Upgrade and Connection fields are the
    answer the client checks, so nothing is dropped."""
    lines = [b"HTTP/1.1 101 " + (reason or b"Switching Protocols")]
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def interim_head(status: int, reason: bytes, headers: Headers) -> bytes:
    """A 1xx answer (100 Continue, 103 Early Hints) relayed to an HTTP/1.1 client."""
    lines = [b"HTTP/1.1 %d " % status + reason]
    lines.extend(name + b": " + value for name, value in without_hop_by_hop(headers))
    return b"\r\n".join(lines) + b"\r\n\r\n"
