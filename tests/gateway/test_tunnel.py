"""The tunnel adapters with fake transports and a fake clock: the plain tunnel's bounded
close handshake, and the frame-aware tunnel carrying out its relay's decisions in order
(bytes written before a side is shut, a dead side aborted, pauses honoured)."""

from __future__ import annotations

import heapq
import itertools
import struct
from collections.abc import Callable
from typing import Any, cast

import pytest

from wsgate.config.model import Address, BackendConfig, PoolConfig
from wsgate.gateway.frame_tunnel import FrameTunnel
from wsgate.gateway.tunnel import Tunnel, make_tunnel, relay_settings
from wsgate.protocol.frame_relay import CLOSE_TIMEOUT_S, KEEPALIVE_PREFIX
from wsgate.protocol.frames import apply_mask, close_frame

KEY = b"\x0a\x0b\x0c\x0d"


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """time() and call_later/call_at on a clock the test moves with `advance`."""

    def __init__(self) -> None:
        self.now = 100.0
        self._heap: list[tuple[float, int, FakeHandle, Callable[[], None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, at: float, callback: Callable[[], None]) -> FakeHandle:
        handle = FakeHandle()
        heapq.heappush(self._heap, (at, next(self._seq), handle, callback))
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeHandle:
        return self.call_at(self.now + delay, callback)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._heap and self._heap[0][0] <= end:
            at, _, handle, callback = heapq.heappop(self._heap)
            self.now = max(self.now, at)
            if not handle.cancelled:
                callback()
        self.now = end


class FakeTransport:
    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.reading = True

    def write(self, data: bytes) -> None:
        if ("eof", b"") in self.events:
            raise RuntimeError("Cannot call write() after write_eof()")  # as asyncio does
        self.events.append(("write", bytes(data)))

    def written(self) -> bytes:
        return b"".join(data for kind, data in self.events if kind == "write")

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.events.append(("eof", b""))

    def close(self) -> None:
        self.events.append(("close", b""))

    def abort(self) -> None:
        self.events.append(("abort", b""))

    def is_closing(self) -> bool:
        return any(kind in ("close", "abort") for kind, _ in self.events)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class FakeUpstream:
    """What a tunnel uses of an UpstreamConnection."""

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.closed = False
        self.tunnel: Any = None

    def start_tunnel(self, tunnel: Any) -> None:
        self.tunnel = tunnel

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.transport.abort()


class FakeLog:
    access_enabled = True

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def error(self, name: str, **fields: Any) -> None:
        self.lines.append(("error", name, fields))

    def event(self, name: str, **fields: Any) -> None:
        self.lines.append(("event", name, fields))


def pool(**keys: Any) -> PoolConfig:
    return PoolConfig("app", (BackendConfig(Address("127.0.0.1", 9001)),), **keys)


def open_tunnel(
    **keys: Any,
) -> tuple[Tunnel, FakeTransport, FakeUpstream, FakeLoop, FakeLog, list[int]]:
    loop, log, client, upstream = FakeLoop(), FakeLog(), FakeTransport(), FakeUpstream()
    ended: list[int] = []
    tunnel = make_tunnel(
        cast(Any, client),
        cast(Any, upstream),
        pool(**keys),
        loop=cast(Any, loop),
        log=cast(Any, log),
        fields={"pool": "app"},
        idle_timeout_s=0.0,
        on_closed=lambda: ended.append(1),
    )
    tunnel.start(b"", b"")
    return tunnel, client, upstream, loop, log, ended


def masked(opcode: int, payload: bytes) -> bytes:
    return bytes((0x80 | opcode, 0x80 | len(payload))) + KEY + apply_mask(payload, KEY)


def frames_of(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        length, head = data[pos + 1] & 0x7F, 2
        start = head + (4 if data[pos + 1] & 0x80 else 0)
        payload = data[pos + start : pos + start + length]
        if data[pos + 1] & 0x80:
            payload = apply_mask(payload, data[pos + head : pos + start])
        out.append((data[pos] & 0x0F, payload))
        pos += start + length
    return out


def test_the_pool_picks_the_kind_of_tunnel() -> None:
    assert relay_settings(pool()) is None
    assert type(open_tunnel()[0]) is Tunnel
    assert type(open_tunnel(max_frame_bytes=10)[0]) is FrameTunnel


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


# == the frame-aware tunnel ==================================================================
def test_keepalive_pings_and_swallows_the_pong() -> None:
    tunnel, client, upstream, loop, _, _ = open_tunnel(ping_idle_s=10.0, ping_timeout_s=5.0)
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
    tunnel, client, upstream, loop, log, ended = open_tunnel(ping_idle_s=1.0, ping_timeout_s=2.0)
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
    tunnel, _, _, loop, _, _ = open_tunnel(ping_idle_s=1.0, ping_timeout_s=1.0)
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
    tunnel, client, upstream, _, _, _ = open_tunnel(max_frame_bytes=64)
    tunnel.on_upstream_tunnel_data(b"\x82" + bytes((size,)) + b"x" * size)
    if size == 64:
        assert client.written() == b"\x82\x40" + b"x" * 64
        return
    assert frames_of(client.written())[0][1][:2] == b"\x03\xf3"  # 1011: the backend failed
    assert frames_of(upstream.transport.written())[0][1][:2] == b"\x03\xf1"  # 1009 to it


def test_a_pause_from_inside_a_write_writes_nothing_twice() -> None:
    # uvloop calls pause_writing from inside transport.write(): the tunnel must not write
    # the relay's output again from there (it did, and a 16 MiB Autobahn message broke).
    tunnel, _, upstream, _, _, _ = open_tunnel(max_frame_bytes=1 << 20)
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
    tunnel, _, upstream, loop, _, _ = open_tunnel(ping_idle_s=1.0, ping_timeout_s=1.0)
    assert tunnel.on_client_eof() is True  # passed on to the backend
    assert upstream.transport.events == [("eof", b"")]
    loop.advance(5.0)  # the timer fires, and writes nothing after the EOF
    assert upstream.transport.events == [("eof", b"")]
