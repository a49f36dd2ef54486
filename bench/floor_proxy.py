"""The floor of a Python proxy on uvloop: the least any design of wsgate could spend per
handshake on this stack, as the benchmark's `floor` target.

It does only what no WebSocket proxy can skip: accept, read the request head, connect to a
backend (round robin over two), send the head, then copy bytes both ways with asyncio
Protocols and backpressure, and close the other side when one ends. It parses nothing,
checks nothing, logs nothing, keeps no counts and has no timeouts: not a proxy to run, a
measure of what uvloop, its transports and the system calls cost before wsgate does
anything of its own. bench.run S2 against it next to nginx tells how near to nginx a
Python data path can come at all.

.venv/bin/python -m bench.floor_proxy --port P --backend1 B1 --backend2 B2
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
from typing import cast

import uvloop

END_OF_HEAD = b"\r\n\r\n"
MAX_HEAD = 16384
HIGH_WATER = 64 * 1024


class Half(asyncio.Protocol):
    """One side of a proxied connection; `peer` is the other side's transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Half | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)

    def eof_received(self) -> bool | None:
        self._close_peer()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._close_peer()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def _close_peer(self) -> None:
        peer, self.peer = self.peer, None
        if peer is not None and peer.transport is not None:
            peer.peer = None
            peer.transport.close()


class ClientHalf(Half):
    """The client's side: holds the head until it is whole, then opens the backend."""

    def __init__(self, backends: itertools.cycle[tuple[str, int]]) -> None:
        super().__init__()
        self.backends = backends
        self.head = b""

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            super().data_received(data)
            return
        self.head += data
        if END_OF_HEAD in self.head:
            assert self.transport is not None
            self.transport.pause_reading()
            asyncio.get_running_loop().create_task(self._open(next(self.backends)))
        elif len(self.head) > MAX_HEAD:
            assert self.transport is not None
            self.transport.close()

    async def _open(self, address: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(Half, *address)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        client = self.transport
        if client is None or client.is_closing():
            assert upstream.transport is not None
            upstream.transport.close()
            return
        self.peer, upstream.peer = upstream, self
        assert upstream.transport is not None
        upstream.transport.write(self.head)
        self.head = b""
        client.resume_reading()


async def serve(port: int, backends: list[tuple[str, int]]) -> None:
    loop = asyncio.get_running_loop()
    turn = itertools.cycle(backends)
    server = await loop.create_server(
        lambda: ClientHalf(turn), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend1", type=int, required=True)
    parser.add_argument("--backend2", type=int, required=True)
    args = parser.parse_args()
    backends = [("127.0.0.1", args.backend1), ("127.0.0.1", args.backend2)]
    uvloop.run(serve(args.port, backends))


if __name__ == "__main__":
    main()
