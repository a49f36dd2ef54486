"""The listeners' ALPN (protocol/alpn.py): the order that gives http/1.1 to every client
offering it, measured with real handshakes between memory BIOs, and the HTTP/2 frames an
h2-only client is told, read back frame by frame."""

from __future__ import annotations

import ssl

import pytest

from tests.gateway.test_tls import handshake
from tests.support.certs import Ca, make_ca, make_leaf
from wsgate.protocol.alpn import (
    H2_HTTP_1_1_REQUIRED,
    SERVER_PROTOCOLS,
    needs_http11_required,
)

SETTINGS, GOAWAY = 0x4, 0x7
HTTP_1_1_REQUIRED = 0xD


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ca, ssl.SSLContext]:
    """A CA, and a server context with a certificate for a.test offering SERVER_PROTOCOLS."""
    directory = tmp_path_factory.mktemp("alpn")
    ca = make_ca(directory)
    cert, key = make_leaf(directory, ca, "a.test")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    server.set_alpn_protocols(list(SERVER_PROTOCOLS))
    return ca, server


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """HTTP/2 frames (RFC 9113 section 4.1): (type, flags, stream, payload) each."""
    found = []
    while data:
        assert len(data) >= 9, data
        length = int.from_bytes(data[:3], "big")
        kind, flags = data[3], data[4]
        stream = int.from_bytes(data[5:9], "big") & 0x7FFF_FFFF
        payload, data = data[9 : 9 + length], data[9 + length :]
        assert len(payload) == length
        found.append((kind, flags, stream, payload))
    return found


def test_the_answer_is_an_empty_settings_then_goaway_http_1_1_required() -> None:
    (settings, goaway) = frames(H2_HTTP_1_1_REQUIRED)
    assert settings == (SETTINGS, 0, 0, b"")  # the server's connection preface
    kind, flags, stream, payload = goaway
    assert (kind, flags, stream, len(payload)) == (GOAWAY, 0, 0, 8)
    assert int.from_bytes(payload[:4], "big") == 0  # no stream was processed
    assert int.from_bytes(payload[4:8], "big") == HTTP_1_1_REQUIRED


def test_only_a_protocol_other_than_http11_needs_the_answer() -> None:
    assert needs_http11_required("h2")
    assert not needs_http11_required("http/1.1")
    assert not needs_http11_required(None)  # no ALPN: HTTP/1.1 by default


@pytest.mark.parametrize(
    ("offer", "chosen"),
    [
        (["h2", "http/1.1"], "http/1.1"),  # a browser's offer: the server's order wins
        (["http/1.1", "h2"], "http/1.1"),
        (["http/1.1"], "http/1.1"),
        (["h2"], "h2"),
        (["spdy/3", "h2"], "h2"),
        (["spdy/3"], None),  # nothing in common: no ALPN, served as HTTP/1.1
        (None, None),
    ],
)
def test_the_ssl_module_picks_by_the_servers_order(
    listener: tuple[Ca, ssl.SSLContext], offer: list[str] | None, chosen: str | None
) -> None:
    ca, server = listener
    client_ctx = ssl.create_default_context(cafile=str(ca.cert))
    if offer is not None:
        client_ctx.set_alpn_protocols(offer)
    client, server_side = handshake(server, client_ctx, "a.test")
    assert client.selected_alpn_protocol() == chosen
    assert server_side.selected_alpn_protocol() == chosen
    assert needs_http11_required(chosen) == (chosen == "h2")
