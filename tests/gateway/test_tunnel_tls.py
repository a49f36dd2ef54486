"""The plain tunnel's close over a TLS client connection, which cannot half-close: the
client's answer to the gateway's close frame ends the wait (else every TLS client of a
drain waited CLOSE_TIMEOUT_S for a TCP close)."""

from __future__ import annotations

import struct

from tests.gateway.test_tunnel import CLOSE_TIMEOUT_S, masked, open_tunnel
from wsgate.protocol.frames import close_frame


def test_a_tls_client_s_close_answer_ends_the_plain_tunnel_at_once() -> None:
    tunnel, client, upstream, _, log, ended = open_tunnel()
    client.can_write_eof = lambda: False  # type: ignore[method-assign]  # a TLS transport
    tunnel.close(1012, "server shutting down", reason="shutdown")
    assert client.events == [("write", close_frame(1012, "server shutting down"))]  # no EOF
    assert upstream.closed and not ended
    tunnel.from_client(masked(0x8, struct.pack("!H", 1012)))
    assert ended and client.events[-1] == ("close", b"")
    assert upstream.transport.written() == b""
    assert log.lines[-1][2]["end"] == "shutdown"


def test_a_silent_tls_client_still_waits_a_bounded_time() -> None:
    tunnel, client, _, loop, _, ended = open_tunnel()
    client.can_write_eof = lambda: False  # type: ignore[method-assign]
    tunnel.close(1001, "", reason="shutdown")
    loop.advance(CLOSE_TIMEOUT_S - 0.1)
    assert not ended
    loop.advance(0.2)
    assert ended


def test_a_backend_that_ends_after_the_close_frames_ends_a_tls_tunnel_at_once() -> None:
    tunnel, client, _, _, _, ended = open_tunnel()
    client.can_write_eof = lambda: False  # type: ignore[method-assign]
    tunnel.from_client(masked(0x8, struct.pack("!H", 1000)))  # the client closes
    tunnel.on_upstream_tunnel_data(close_frame(1000, ""))  # the backend answers
    tunnel.on_upstream_eof()  # and ends the TCP connection
    assert ended and client.events[-1] == ("close", b"")
