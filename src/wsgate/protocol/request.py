"""Checks of a request head that a proxy must make before it forwards anything
(RFC 9112 sections 2.3, 3.2 and 6; RFC 9110 section 7.8). Pure: headers in, a
ProtocolError out."""

from __future__ import annotations

from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.headers import Headers, get_all, get_one

SPOKEN_VERSIONS = ("1.0", "1.1")


def announces_body(headers: Headers) -> bool:
    """Whether the head says a body follows: any Transfer-Encoding, or a non-zero
    Content-Length (the parser has already refused malformed and conflicting ones)."""
    if get_all(headers, b"transfer-encoding"):
        return True
    length = get_one(headers, b"content-length")
    if length is None:
        return False
    stripped = length.strip()
    return not stripped.isdigit() or int(stripped) > 0


def check_request_head(version: str, headers: Headers, *, upgrade: bool) -> None:
    """Refuse what must not be forwarded: another HTTP version than 1.0/1.1 (a proxy
    would otherwise rewrite it as 1.1), a missing or repeated Host, and an upgrade
    request with a body. The last is request smuggling's door: a backend that declines
    the upgrade keeps its connection, and the body the gateway held back as tunnel
    bytes never reaches it, so the next request on that connection is eaten as the
    body and what follows it is parsed as a request nobody routed."""
    if version not in SPOKEN_VERSIONS:
        raise ProtocolError("unsupported_http_version", f"HTTP/{version} is not supported")
    hosts = get_all(headers, b"host")
    if len(hosts) > 1:
        raise ProtocolError("bad_host", f"{len(hosts)} Host headers; exactly one is allowed")
    if not hosts and version == "1.1":
        raise ProtocolError("bad_host", "an HTTP/1.1 request must carry a Host header")
    if upgrade and announces_body(headers):
        raise ProtocolError(
            "upgrade_with_body",
            "an upgrade request must not carry a body (Content-Length > 0 or Transfer-Encoding)",
        )
