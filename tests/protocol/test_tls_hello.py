"""The ClientHello's SNI and ALPN offer (protocol/tls_hello.py): hand-made literal bytes,
one ClientHello made by Python's own TLS client in memory, and anything else refused
quietly."""

from __future__ import annotations

import contextlib
import ssl

from hypothesis import given
from hypothesis import strategies as st

from wsgate.protocol.tls_hello import (
    H2_HTTP_1_1_REQUIRED,
    ClientHello,
    parse_client_hello,
)


def vector(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def hello(extensions: bytes | None) -> bytes:
    body = b"\x03\x03" + bytes(32) + vector(b"", 1) + vector(b"\x13\x01", 2) + vector(b"\x00", 1)
    if extensions is not None:
        body += vector(extensions, 2)
    return b"\x01" + vector(body, 3)


def alpn_ext(*names: bytes) -> bytes:
    return b"\x00\x10" + vector(vector(b"".join(vector(n, 1) for n in names), 2), 2)


def sni_ext(name: bytes) -> bytes:
    return b"\x00\x00" + vector(vector(b"\x00" + vector(name, 2), 2), 2)


def test_sni_and_alpn() -> None:
    message = hello(sni_ext(b"a.example") + alpn_ext(b"h2", b"http/1.1"))
    assert parse_client_hello(message) == ClientHello("a.example", ("h2", "http/1.1"))
    assert not ClientHello("a.example", ("h2", "http/1.1")).refuses_http11


def test_h2_only_refuses_http11() -> None:
    found = parse_client_hello(hello(alpn_ext(b"h2")))
    assert found == ClientHello(None, ("h2",))
    assert found.refuses_http11


def test_no_alpn_extension_is_no_offer_at_all() -> None:
    found = parse_client_hello(hello(sni_ext(b"b.example")))
    assert found == ClientHello("b.example", None)
    assert not found.refuses_http11
    assert parse_client_hello(hello(None)) == ClientHello(None, None)  # no extensions


def test_other_messages_and_truncations_are_none() -> None:
    message = hello(alpn_ext(b"h2"))
    assert parse_client_hello(b"\x02" + message[1:]) is None  # a ServerHello
    for cut in range(len(message)):
        assert parse_client_hello(message[:cut]) is None


@given(st.binary(max_size=300))
def test_never_raises(data: bytes) -> None:
    parse_client_hello(data)


def test_a_real_client_hello_from_pythons_tls_client() -> None:
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["h2"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(incoming, outgoing, server_hostname="sni.example")
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    record = outgoing.read()
    assert record[0] == 22  # a handshake record; its 5-byte header off
    found = parse_client_hello(record[5 : 5 + int.from_bytes(record[3:5], "big")])
    assert found == ClientHello("sni.example", ("h2",))


def test_the_goaway_is_a_settings_frame_then_goaway_http_1_1_required() -> None:
    settings, goaway = H2_HTTP_1_1_REQUIRED[:9], H2_HTTP_1_1_REQUIRED[9:]
    assert settings == b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    assert goaway[:9] == b"\x00\x00\x08\x07\x00\x00\x00\x00\x00"  # length 8, type 7, stream 0
    assert int.from_bytes(goaway[13:17], "big") == 0xD
