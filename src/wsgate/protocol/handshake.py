"""The RFC 6455 opening handshake, as a gateway sees it: check the client's upgrade
request (section 4.2.1) and the backend's 101 answer (section 4.2.2, 4.1 items 5-6)."""

from __future__ import annotations

import base64
import binascii
import hashlib

from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.headers import Headers, get_all, get_one, tokens

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = b"13"
KEY_BYTES = 16


def accept_value(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID))."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def wants_websocket(headers: Headers) -> bool:
    """True when the request tries a WebSocket upgrade (Upgrade names websocket).

    Such a request is then held to every rule of section 4.2.1; an Upgrade to anything
    else (h2c, TLS) is not ours and is dropped as a hop-by-hop header.
    """
    return b"websocket" in tokens(headers, b"upgrade")


def check_upgrade_request(method: bytes, http_version: str, headers: Headers) -> bytes:
    """Validate a client's WebSocket upgrade request; return its Sec-WebSocket-Key.

    Raises ProtocolError with `bad_upgrade_request` (400) or `unsupported_version` (426).
    """
    if method != b"GET":
        raise ProtocolError("bad_upgrade_request", f"method must be GET, not {method.decode()}")
    if http_version not in ("1.1",):
        raise ProtocolError("bad_upgrade_request", f"HTTP/{http_version} cannot upgrade")
    if not get_all(headers, b"host"):
        raise ProtocolError("bad_upgrade_request", "missing Host header")
    if b"upgrade" not in tokens(headers, b"connection"):
        raise ProtocolError("bad_upgrade_request", "Connection header lacks the Upgrade token")
    keys = get_all(headers, b"sec-websocket-key")
    if len(keys) != 1:
        raise ProtocolError(
            "bad_upgrade_request",
            "missing Sec-WebSocket-Key" if not keys else "more than one Sec-WebSocket-Key",
        )
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ProtocolError(
            "bad_upgrade_request", "Sec-WebSocket-Key is not 16 base64-encoded bytes"
        )
    version = get_one(headers, b"sec-websocket-version")
    if version is None:
        raise ProtocolError("bad_upgrade_request", "missing Sec-WebSocket-Version")
    if version.strip() != SUPPORTED_VERSION:
        raise ProtocolError(
            "unsupported_version",
            f"Sec-WebSocket-Version {version.decode(errors='replace')!r} is not supported; "
            "this gateway speaks version 13",
        )
    return key


def check_upgrade_response(key: bytes, headers: Headers) -> None:
    """Validate a backend's 101 answer to the request that carried `key`.

    Raises ProtocolError(`upstream_bad_accept`) when the answer would not complete a
    WebSocket handshake at the client.
    """
    if b"websocket" not in tokens(headers, b"upgrade"):
        raise ProtocolError("upstream_bad_accept", "101 without Upgrade: websocket")
    if b"upgrade" not in tokens(headers, b"connection"):
        raise ProtocolError("upstream_bad_accept", "101 without Connection: Upgrade")
    accept = get_one(headers, b"sec-websocket-accept")
    if accept is None:
        raise ProtocolError("upstream_bad_accept", "101 without Sec-WebSocket-Accept")
    if accept.strip() != accept_value(key):
        raise ProtocolError(
            "upstream_bad_accept",
            "Sec-WebSocket-Accept does not match the Sec-WebSocket-Key that was sent",
        )
