"""The PROXY protocol header (HAProxy's spec, versions 1 and 2) that an L4 balancer puts
before the client's bytes to say who the client is. Pure: feed bytes, get an address."""

from __future__ import annotations

import ipaddress
import struct

from wsgate.protocol.errors import ProtocolError

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the spec's longest v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def parse_proxy_header(data: bytes) -> tuple[str | None, int] | None:
    """Parse a header at the start of `data`.

    Returns None when more bytes are needed; else (client address or None for LOCAL /
    UNKNOWN, header length). Raises ProtocolError(`bad_request`) for a malformed header.
    """
    if data.startswith(V2_SIGNATURE[: len(data)]) and len(data) < 16:
        return None
    if data.startswith(V2_SIGNATURE):
        return _parse_v2(data)
    if V1_PREFIX.startswith(data[:6]) and len(data) < 6:
        return None
    if data.startswith(V1_PREFIX):
        return _parse_v1(data)
    raise ProtocolError("bad_request", "expected a PROXY protocol header")


def _parse_v1(data: bytes) -> tuple[str | None, int] | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProtocolError("bad_request", "PROXY v1 line too long")
        return None
    parts = data[:end].decode("ascii", "replace").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return None, end + 2
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProtocolError("bad_request", "malformed PROXY v1 line")
    try:
        address = ipaddress.ip_address(parts[2])
    except ValueError:
        raise ProtocolError("bad_request", "bad source address in PROXY v1 line") from None
    return str(address), end + 2


def _parse_v2(data: bytes) -> tuple[str | None, int] | None:
    version_command, family, length = struct.unpack_from("!BBH", data, 12)
    if version_command >> 4 != 2:
        raise ProtocolError("bad_request", "unsupported PROXY protocol version")
    total = 16 + length
    if len(data) < total:
        return None
    if version_command & 0x0F == 0:  # LOCAL: a health check from the balancer itself
        return None, total
    body = data[16:total]
    if family >> 4 == 1 and len(body) >= 12:
        return str(ipaddress.IPv4Address(body[:4])), total
    if family >> 4 == 2 and len(body) >= 36:
        return str(ipaddress.IPv6Address(body[:16])), total
    return None, total
