"""ALPN on the gateway's TLS listeners: what they offer, and what to tell a client that
can speak only HTTP/2. Pure: names and bytes, no sockets.

The listeners offer `http/1.1` first and `h2` second. The `ssl` module picks by the
server's order (OpenSSL's SSL_select_next_proto walks the server's list), so every
client offering `http/1.1` gets it, whatever else it offers; only a client that offers
`h2` and not `http/1.1` gets `h2`. That choice, read after the handshake with the public
`SSLObject.selected_alpn_protocol()`, is how the gateway learns it has an h2-only client:
the offer itself is not readable through the `ssl` module's public API. Having agreed on
h2, the gateway says in HTTP/2's own words that HTTP/1.1 is required (RFC 9113 section
7, HTTP_1_1_REQUIRED), instead of a failure the client cannot explain. A client whose
offer has neither gets no ALPN at all (the `ssl` module carries on without one) and is
served as HTTP/1.1.
"""

from __future__ import annotations

HTTP11 = "http/1.1"
H2 = "h2"
# The listeners' ALPN list, in the order of preference.
SERVER_PROTOCOLS = (HTTP11, H2)

# What an h2 client gets (RFC 9113 sections 3.4, 6.8): the server's connection preface
# (an empty SETTINGS frame), then GOAWAY(last stream 0, HTTP_1_1_REQUIRED = 0xd).
H2_HTTP_1_1_REQUIRED = (
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # SETTINGS, empty
    + b"\x00\x00\x08\x07\x00\x00\x00\x00\x00"  # GOAWAY, 8 bytes, stream 0
    + b"\x00\x00\x00\x00"  # last stream id 0
    + b"\x00\x00\x00\x0d"  # HTTP_1_1_REQUIRED
)


def needs_http11_required(selected: str | None) -> bool:
    """After the handshake: the client was chosen a protocol other than HTTP/1.1 (with
    SERVER_PROTOCOLS, h2: it did not offer http/1.1) and must be told HTTP/1.1 is required.
    None (no ALPN at all) is HTTP/1.1 by default."""
    return selected is not None and selected != HTTP11
