"""gateway/frame_tunnel.py (`FrameTunnel`) with fake transports and a fake clock (the
fakes are test_tunnel.py's): the relay's decisions carried out in order (bytes written
before a side is shut, a dead side aborted, pauses honoured), keepalive pings, frame
limits, and the gateway's own close."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from tests.gateway.test_tunnel import (
    KEY,
    FakeLog,
    FakeLoop,
    FakeTransport,
    FakeUpstream,
    frames_of,
    masked,
    open_tunnel,
)
from wsgate.gateway.frame_tunnel import FrameTunnel
from wsgate.protocol.frame_relay import KEEPALIVE_PREFIX


def open_frame_tunnel(
    **keys: Any,
) -> tuple[FrameTunnel, FakeTransport, FakeUpstream, FakeLoop, FakeLog, list[int]]:
    """A started tunnel for a pool with frame keys: a FrameTunnel."""
    tunnel, client, upstream, loop, log, ended = open_tunnel(**keys)
    assert isinstance(tunnel, FrameTunnel)
    return tunnel, client, upstream, loop, log, ended


# == the frame-aware tunnel ==================================================================
def test_keepalive_pings_and_swallows_the_pong() -> None:
    tunnel, client, upstream, loop, _, _ = open_frame_tunnel(ping_idle_s=10.0, ping_timeout_s=5.0)
    loop.advance(10.0)
    ((op, token),) = frames_of(client.written())
    assert op == 0x9 and token.startswith(KEEPALIVE_PREFIX)
    ((op, to_backend),) = frames_of(upstream.transport.written())
    assert op == 0x9 and upstream.transport.written()[1] & 0x80  # masked towards the backend
    activity = tunnel.last_activity
    tunnel.from_client(masked(0xA, token))
    assert len(upstream.transport.events) == 1  # swallowed
    assert tunnel.last_activity == activity  # and not counted as the application's traffic
    tunnel.on_upstream_tunnel_data(bytes((0x8A, len(to_backend))) + to_backend)
    assert len(client.events) == 1
    loop.advance(14.0)
    assert tunnel.relay.ending is None  # both answered: alive


def test_a_dead_backend_is_aborted_and_the_client_closed_after_its_answer() -> None:
    tunnel, client, upstream, loop, log, ended = open_frame_tunnel(
        ping_idle_s=1.0, ping_timeout_s=2.0
    )
    loop.advance(1.0)
    tunnel.from_client(b"\x81\x80" + KEY)  # the client is alive; the backend says nothing
    loop.advance(2.0)
    assert upstream.transport.events[-1] == ("abort", b"")
    (op, payload) = frames_of(client.written())[-1]
    assert op == 0x8 and payload[:2] == b"\x03\xf3"  # 1011
    assert not client.is_closing() and not ended
    tunnel.from_client(masked(0x8, b"\x03\xf3"))
    assert client.events[-1] == ("close", b"")  # written first, then closed
    tunnel.on_client_lost()
    assert ended
    kind, name, fields = log.lines[-1]
    assert (kind, name, fields["fault"], fields["close_sent"]) == (
        "error",
        "peer_ping_timeout",
        "backend",
        {"client": 1011},
    )


def test_a_backend_held_back_by_a_slow_client_is_not_judged_dead() -> None:
    tunnel, _, _, loop, _, _ = open_frame_tunnel(ping_idle_s=1.0, ping_timeout_s=1.0)
    tunnel.on_backend_reading(False)  # the client's buffer is full: the backend waits
    for _ in range(60):
        tunnel.from_client(masked(0x1, b"still reading slowly"))
        loop.advance(0.5)
    assert tunnel.relay.ending is None
    tunnel.on_backend_reading(True)
    loop.advance(0.5)
    assert tunnel.relay.ending is None


@pytest.mark.parametrize("size", [64, 65])
def test_an_oversized_frame_closes_both_sides_with_their_codes(size: int) -> None:
    tunnel, client, upstream, _, _, _ = open_frame_tunnel(max_frame_bytes=64)
    tunnel.on_upstream_tunnel_data(b"\x82" + bytes((size,)) + b"x" * size)
    if size == 64:
        assert client.written() == b"\x82\x40" + b"x" * 64
        return
    assert frames_of(client.written())[0][1][:2] == b"\x03\xf3"  # 1011: the backend failed
    assert frames_of(upstream.transport.written())[0][1][:2] == b"\x03\xf1"  # 1009 to it


def test_a_pause_from_inside_a_write_writes_nothing_twice() -> None:
    # uvloop calls pause_writing from inside transport.write(): the tunnel must not write
    # the relay's output again from there (it did, and a 16 MiB Autobahn message broke).
    tunnel, _, upstream, _, _, _ = open_frame_tunnel(max_frame_bytes=1 << 20)
    writes: list[bytes] = []

    def write(data: bytes) -> None:
        writes.append(bytes(data))
        if len(writes) == 1:
            tunnel.on_upstream_pause_writing()

    upstream.write = write  # type: ignore[method-assign]
    head = b"\x82\xfe\x01\x00" + KEY
    tunnel.from_client(head + b"a" * 100)
    tunnel.from_client(b"b" * 156 + masked(0x1, b"next"))
    assert b"".join(writes) == head + b"a" * 100 + b"b" * 156 + masked(0x1, b"next")


def test_no_keepalive_ping_is_written_after_a_half_close() -> None:
    tunnel, _, upstream, loop, _, _ = open_frame_tunnel(ping_idle_s=1.0, ping_timeout_s=1.0)
    assert tunnel.on_client_eof() is True  # passed on to the backend
    assert upstream.transport.events == [("eof", b"")]
    loop.advance(5.0)  # the timer fires, and writes nothing after the EOF
    assert upstream.transport.events == [("eof", b"")]


def test_the_gateways_close_goes_to_both_sides_and_ends_when_both_answer() -> None:
    tunnel, client, upstream, _, log, ended = open_frame_tunnel(max_frame_bytes=1000)
    tunnel.close(1001, "server shutting down", reason="shutdown")
    assert frames_of(client.written()) == [(0x8, struct.pack("!H", 1001) + b"server shutting down")]
    ((op, payload),) = frames_of(upstream.transport.written())
    assert op == 0x8 and payload[:2] == struct.pack("!H", 1001)
    assert not ended
    tunnel.from_client(masked(0x8, struct.pack("!H", 1001)))
    tunnel.on_upstream_tunnel_data(b"\x88\x02" + struct.pack("!H", 1001))
    tunnel.on_client_lost()
    tunnel.on_upstream_lost(None)
    assert ended and log.lines[-1][2]["end"] == "shutdown"


def test_frames_pass_through_unchanged_both_ways() -> None:
    tunnel, client, upstream, _, _, _ = open_frame_tunnel(max_frame_bytes=1000)
    tunnel.from_client(masked(0x1, b"hello"))
    tunnel.on_upstream_tunnel_data(b"\x82\x03abc")
    assert upstream.transport.written() == masked(0x1, b"hello")
    assert client.written() == b"\x82\x03abc"
    assert (tunnel.bytes_up, tunnel.bytes_down) == (len(masked(0x1, b"hello")), 5)
    assert KEY in upstream.transport.written()
