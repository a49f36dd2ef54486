"""What a TLS ClientHello offers: the server name (SNI) and the application protocols (ALPN).

The `ssl` module chooses the ALPN protocol itself and, when the client offers none the
server has, carries on without one (RFC 7301 section 3.2 would have it refuse). To say
clearly that a client offering only `h2` cannot be served, the gateway reads the offer from
the ClientHello as the handshake sees it. Pure: bytes in, a `ClientHello` (or None) out.

    struct {                                          RFC 8446 section 4.1.2
        ProtocolVersion legacy_version;               2 bytes
        Random random;                                32 bytes
        opaque legacy_session_id<0..32>;              1-byte length
        CipherSuite cipher_suites<2..2^16-2>;         2-byte length
        opaque legacy_compression_methods<1..2^8-1>;  1-byte length
        Extension extensions<8..2^16-1>;              2-byte length (optional in TLS 1.2)
    } ClientHello;
    struct { ExtensionType extension_type; opaque extension_data<0..2^16-1>; } Extension;
    ProtocolName protocol_name_list<2..2^16-1>, ProtocolName opaque<1..2^8-1>   RFC 7301
    ServerName server_name_list<1..2^16-1>: NameType (0 = host_name), opaque<1..2^16-1>
                                                      RFC 6066 section 3
"""

from __future__ import annotations

from dataclasses import dataclass

HANDSHAKE_CLIENT_HELLO = 1
EXT_SERVER_NAME = 0
EXT_ALPN = 16
HTTP11 = "http/1.1"
# The HTTP/2 GOAWAY an h2-only client gets (RFC 9113 sections 3.4, 6.8): the server's
# connection preface (an empty SETTINGS frame), then GOAWAY(last stream 0,
# HTTP_1_1_REQUIRED = 0xd), so that it fails with words rather than a reset.
H2_HTTP_1_1_REQUIRED = (
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # SETTINGS, empty
    + b"\x00\x00\x08\x07\x00\x00\x00\x00\x00"  # GOAWAY, 8 bytes, stream 0
    + b"\x00\x00\x00\x00"  # last stream id 0
    + b"\x00\x00\x00\x0d"  # HTTP_1_1_REQUIRED
)


@dataclass(frozen=True, slots=True)
class ClientHello:
    server_name: str | None
    # None: no ALPN extension at all (a client that speaks HTTP/1.1 by default).
    alpn: tuple[str, ...] | None

    @property
    def refuses_http11(self) -> bool:
        """The client offers application protocols, and HTTP/1.1 is not one of them."""
        return self.alpn is not None and HTTP11 not in self.alpn


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.number(length_size))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def parse_client_hello(message: bytes) -> ClientHello | None:
    """The SNI and ALPN offer of a ClientHello handshake message (with its 4-byte header:
    type 1 and a 3-byte length); None for anything else or a malformed one."""
    try:
        outer = _Reader(message)
        if outer.number(1) != HANDSHAKE_CLIENT_HELLO:
            return None
        body = _Reader(outer.vector(3))
        body.take(2 + 32)
        body.vector(1)  # session id
        body.vector(2)  # cipher suites
        body.vector(1)  # compression methods
        if not body.left:
            return ClientHello(None, None)
        extensions = _Reader(body.vector(2))
        server_name: str | None = None
        alpn: tuple[str, ...] | None = None
        while extensions.left:
            kind = extensions.number(2)
            data = _Reader(extensions.vector(2))
            if kind == EXT_ALPN:
                names = _Reader(data.vector(2))
                found = []
                while names.left:
                    found.append(names.vector(1).decode("ascii", "replace"))
                alpn = tuple(found)
            elif kind == EXT_SERVER_NAME and data.left:
                entries = _Reader(data.vector(2))
                while entries.left:
                    name_type = entries.number(1)
                    name = entries.vector(2)
                    if name_type == 0:
                        server_name = name.decode("ascii", "replace")
        return ClientHello(server_name, alpn)
    except ValueError:
        return None
