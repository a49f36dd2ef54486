from __future__ import annotations

import struct

import pytest

from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.proxy_protocol import V2_SIGNATURE, parse_proxy_header


def test_v1_tcp4_and_rest() -> None:
    data = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 8080\r\nGET / HTTP/1.1\r\n"
    parsed = parse_proxy_header(data)
    assert parsed is not None  # a whole header
    address, length = parsed
    assert address == "203.0.113.7"
    assert data[length:] == b"GET / HTTP/1.1\r\n"


def test_v1_needs_more_bytes_then_parses() -> None:
    assert parse_proxy_header(b"PRO") is None
    assert parse_proxy_header(b"PROXY TCP6 2001:db8::1 ::1 1 2") is None
    assert parse_proxy_header(b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n") == ("2001:db8::1", 32)


def test_v1_unknown_and_malformed() -> None:
    assert parse_proxy_header(b"PROXY UNKNOWN\r\n") == (None, 15)
    with pytest.raises(ProtocolError):
        parse_proxy_header(b"PROXY TCP4 nonsense\r\n")
    with pytest.raises(ProtocolError):
        parse_proxy_header(b"GET / HTTP/1.1\r\n")


def v2(command: int, family: int, body: bytes) -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(body)) + body


def test_v2_ipv4_proxy_and_local() -> None:
    body = bytes([198, 51, 100, 9, 127, 0, 0, 1]) + struct.pack("!HH", 5555, 80)
    data = v2(1, 0x11, body) + b"rest"
    parsed = parse_proxy_header(data)
    assert parsed is not None  # a whole header
    address, length = parsed
    assert address == "198.51.100.9" and data[length:] == b"rest"
    assert parse_proxy_header(v2(0, 0x00, b"")) == (None, 16)
    assert parse_proxy_header(v2(1, 0x11, body)[:20]) is None
