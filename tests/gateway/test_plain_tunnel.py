"""gateway/plain_tunnel.py (`Tunnel`) with fake transports and a fake clock (the fakes
are test_tunnel.py's): bytes copied both ways and counted, the gateway's close at a frame
boundary or not, its bounded wait for the client, a backend that breaks or ends, the idle
timeout, back-pressure passed on, and the one line logged at the end."""

from __future__ import annotations

import struct

from tests.gateway.test_tunnel import frames_of, masked, open_tunnel
from wsgate.gateway.plain_tunnel import CLOSE_GRACE_S
from wsgate.protocol.frame_relay import CLOSE_TIMEOUT_S
from wsgate.protocol.frames import close_frame


# == the plain tunnel's close ================================================================
def test_plain_close_half_closes_then_ends_at_the_clients_eof() -> None:
    tunnel, client, upstream, _, log, ended = open_tunnel()
    tunnel.close(1001, "server shutting down", reason="shutdown")
    assert client.events == [("write", close_frame(1001, "server shutting down")), ("eof", b"")]
    assert upstream.closed and not ended
    tunnel.from_client(masked(0x8, struct.pack("!H", 1001)))  # the client's answer: dropped
    assert upstream.transport.written() == b""
    assert tunnel.on_client_eof() is None
    assert ended and client.events[-1] == ("close", b"")
    assert log.lines[-1][1] == "tunnel_end" and log.lines[-1][2]["end"] == "shutdown"


def test_plain_close_waits_a_bounded_time() -> None:
    tunnel, client, _, loop, _, ended = open_tunnel()
    tunnel.close(1001, "", reason="shutdown")
    loop.advance(CLOSE_TIMEOUT_S - 0.1)
    assert not ended
    loop.advance(0.2)
    assert ended and client.events[-1] == ("close", b"")


def test_plain_broken_backend_gives_1014_then_waits_for_the_client() -> None:
    tunnel, client, upstream, _, log, ended = open_tunnel()
    tunnel.on_upstream_tunnel_data(b"\x81\x02hi")
    upstream.closed = True
    tunnel.on_upstream_lost(None)
    assert frames_of(client.written()[4:]) == [
        (0x8, b"\x03\xf6bad gateway: backend connection lost")
    ]
    assert not ended
    tunnel.on_client_lost()
    assert ended and log.lines[-1][:2] == ("error", "upstream_tunnel_broken")


def test_bytes_go_both_ways_and_are_counted_in_the_end_line() -> None:
    tunnel, client, upstream, loop, log, ended = open_tunnel()
    tunnel.from_client(masked(0x1, b"up"))
    tunnel.on_upstream_tunnel_data(b"\x81\x04down")
    assert upstream.transport.written() == masked(0x1, b"up")
    assert client.written() == b"\x81\x04down"
    loop.advance(2.5)
    tunnel.on_upstream_tunnel_data(b"\x88\x02\x03\xe8")  # the backend's close frame
    tunnel.on_upstream_eof()
    assert client.events[-1] == ("eof", b"")  # passed on; the client answers
    tunnel.on_client_eof()
    assert ended
    kind, name, fields = log.lines[-1]
    assert (kind, name, fields["end"], fields["pool"]) == ("event", "tunnel_end", "closed", "app")
    assert (fields["bytes_up"], fields["bytes_down"], fields["duration_s"]) == (8, 10, 2.5)


def test_the_bytes_behind_the_101_and_the_request_go_first() -> None:
    tunnel, client, upstream, _, _, _ = open_tunnel()
    assert upstream.tunnel is tunnel
    tunnel.start(b"\x81\x01a", masked(0x1, b"b"))
    assert client.written() == b"\x81\x01a"
    assert upstream.transport.written() == masked(0x1, b"b")


def test_a_close_in_the_middle_of_a_frame_closes_at_once_without_a_frame() -> None:
    tunnel, client, upstream, _, log, ended = open_tunnel()
    tunnel.on_upstream_tunnel_data(b"\x82\x10half")  # 4 of 16 bytes
    tunnel.close(1001, "server shutting down", reason="shutdown")
    assert client.written() == b"\x82\x10half" and client.events[-1] == ("close", b"")
    assert upstream.closed and ended
    assert log.lines[-1][2]["close_frame_sent"] is False


def test_a_close_after_the_backends_close_frame_sends_none_of_its_own() -> None:
    tunnel, client, _, _, log, ended = open_tunnel()
    tunnel.on_upstream_tunnel_data(b"\x88\x02\x03\xe8")
    tunnel.close(1001, "server shutting down", reason="shutdown")
    assert client.written() == b"\x88\x02\x03\xe8" and ended
    assert log.lines[-1][2]["close_frame_sent"] is False
    tunnel.close(1001, "again", reason="shutdown")  # closed: nothing more
    assert client.written() == b"\x88\x02\x03\xe8" and len(log.lines) == 1


def test_over_tls_the_clients_next_bytes_after_the_close_end_it() -> None:
    # No half-close over TLS: the client's answer (its close frame) is the end.
    tunnel, client, _, _, _, ended = open_tunnel(tls_client=True)
    tunnel.close(1001, "bye", reason="shutdown")
    assert client.events == [("write", close_frame(1001, "bye"))]
    tunnel.from_client(masked(0x8, struct.pack("!H", 1001)))
    assert ended and client.events[-1] == ("close", b"")


def test_a_backend_that_ends_without_a_close_frame_is_a_broken_tunnel() -> None:
    tunnel, client, _, _, log, ended = open_tunnel()
    tunnel.on_upstream_eof()
    ((op, payload),) = frames_of(client.written())
    assert op == 0x8 and payload[:2] == b"\x03\xf6"  # 1014
    assert b"backend closed the connection without a close frame" in payload
    tunnel.on_client_eof()
    assert ended and log.lines[-1][:2] == ("error", "upstream_tunnel_broken")


def test_the_backends_eof_after_its_close_frame_waits_a_grace_for_the_client() -> None:
    tunnel, client, _, loop, log, ended = open_tunnel()
    tunnel.on_upstream_tunnel_data(b"\x88\x02\x03\xe8")
    tunnel.on_upstream_eof()
    assert client.events[-1] == ("eof", b"")
    loop.advance(CLOSE_GRACE_S - 0.1)
    assert not ended
    loop.advance(0.2)
    assert ended and client.events[-1] == ("close", b"")
    assert log.lines[-1][2]["end"] == "closed"


def test_the_idle_timeout_counts_from_the_last_bytes() -> None:
    tunnel, client, _, loop, log, _ = open_tunnel(idle_timeout_s=30.0)
    loop.advance(20.0)
    tunnel.from_client(masked(0x1, b"still here"))
    loop.advance(20.0)  # 40 s since the start, 20 s since the last bytes
    assert not tunnel.closed and b"\x88" not in client.written()
    loop.advance(10.1)
    assert frames_of(client.written()) == [(0x8, struct.pack("!H", 1001) + b"idle timeout")]
    tunnel.on_client_eof()
    assert log.lines[-1][2]["end"] == "tunnel_idle_timeout"


def test_back_pressure_from_the_backend_pauses_the_client() -> None:
    tunnel, client, _, _, _, _ = open_tunnel()
    tunnel.on_upstream_pause_writing()
    assert not client.reading
    tunnel.on_upstream_resume_writing()
    assert client.reading
    tunnel.on_upstream_pause_writing()
    client.close()
    tunnel.on_upstream_resume_writing()  # a closing transport is not resumed
    assert not client.reading


def test_without_access_lines_only_an_error_end_is_logged() -> None:
    tunnel, _, _, _, log, ended = open_tunnel()
    log.access_enabled = False
    tunnel.on_client_lost()
    assert ended and log.lines == []
    tunnel, _, _, _, log, ended = open_tunnel()
    log.access_enabled = False
    tunnel.on_upstream_lost(ConnectionResetError("reset"))
    tunnel.on_client_lost()
    assert [line[:2] for line in log.lines] == [("error", "upstream_tunnel_broken")]
    assert log.lines[0][2]["why"] == "backend connection lost: reset"
