"""A `websockets` backend in its own process, so a test can kill and restart it by PID.

Run: python -m tests.support.named_backend PORT NAME [--slow-handshake SECONDS --slots N]
It greets every client with its NAME, then echoes. With --slow-handshake, at most N
handshakes run at once and each takes SECONDS: a backend that cannot keep up.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("name")
    parser.add_argument("--slow-handshake", type=float, default=0.0)
    parser.add_argument("--slots", type=int, default=1)
    args = parser.parse_args()
    slots = asyncio.Semaphore(args.slots)

    async def process_request(conn: ServerConnection, request: Request) -> Response | None:
        if args.slow_handshake:
            async with slots:
                print(f"handshake {request.path}", flush=True)  # tests count these
                await asyncio.sleep(args.slow_handshake)
        return None

    async def handler(conn: ServerConnection) -> None:
        await conn.send(args.name)
        async for message in conn:
            await conn.send(message)

    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(handler, "127.0.0.1", args.port, process_request=process_request):
        await stop


if __name__ == "__main__":
    asyncio.run(main())
