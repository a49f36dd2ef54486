"""gateway/tunnel.py: the kind of tunnel a pool's config makes (`make_tunnel`,
`relay_settings`); and the fake transports, upstream, log and clock that the tunnels'
own tests (test_plain_tunnel.py, test_frame_tunnel.py) drive them with."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any, cast

from wsgate.config.model import Address, BackendConfig, PoolConfig
from wsgate.gateway.frame_tunnel import FrameTunnel
from wsgate.gateway.tunnel import Tunnel, make_tunnel, relay_settings

# test_tunnel_tls.py takes the close timeout from here, with the fakes.
from wsgate.protocol.frame_relay import CLOSE_TIMEOUT_S as CLOSE_TIMEOUT_S
from wsgate.protocol.frames import apply_mask

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
        self.half_close = True

    def write(self, data: bytes) -> None:
        if ("eof", b"") in self.events:
            raise RuntimeError("Cannot call write() after write_eof()")  # as asyncio does
        self.events.append(("write", bytes(data)))

    def written(self) -> bytes:
        return b"".join(data for kind, data in self.events if kind == "write")

    def can_write_eof(self) -> bool:
        return self.half_close

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
    *, idle_timeout_s: float = 0.0, tls_client: bool = False, **keys: Any
) -> tuple[Tunnel, FakeTransport, FakeUpstream, FakeLoop, FakeLog, list[int]]:
    """A tunnel for a pool with `keys`, started; `tls_client`: the client's transport
    cannot half-close, as a TLS one cannot."""
    loop, log, client, upstream = FakeLoop(), FakeLog(), FakeTransport(), FakeUpstream()
    client.half_close = not tls_client
    ended: list[int] = []
    tunnel = make_tunnel(
        cast(Any, client),
        cast(Any, upstream),
        pool(**keys),
        loop=cast(Any, loop),
        log=cast(Any, log),
        fields={"pool": "app"},
        idle_timeout_s=idle_timeout_s,
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


def test_relay_settings_are_the_pools_frame_keys() -> None:
    settings = relay_settings(
        pool(
            ping_idle_s=20.0,
            ping_timeout_s=5.0,
            max_message_bytes=1000,
            max_frame_bytes=100,
            max_messages_per_s=50.0,
            message_burst=7,
        )
    )
    assert settings is not None
    assert (settings.ping_idle_s, settings.ping_timeout_s) == (20.0, 5.0)
    assert (settings.max_message_bytes, settings.max_frame_bytes) == (1000, 100)
    assert (settings.max_messages_per_s, settings.message_burst) == (50.0, 7)
