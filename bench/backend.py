"""A benchmark backend: a `websockets` echo server whose handshake can be made slow.

`--work-ms W --limit L` makes each handshake await W ms of work with at most L at a time,
so the backend completes about L * 1000 / W handshakes per second, whatever the load; a
small `--backlog` keeps the kernel's accept queue short, as on a busy real server.
Run from the repository root: python -m bench.backend --port 9001 --work-ms 48 --limit 1
--backlog 16. From any other directory give the file's path instead, e.g.
~/wsgate/.venv/bin/python ~/wsgate/bench/backend.py --port 9001 (`-m bench.backend` needs
the root on the module path: bench/ is not installed); it imports nothing from the
repository, only the standard library, websockets and uvloop, so it runs by path anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request


async def echo(conn: ServerConnection) -> None:
    with contextlib.suppress(Exception):
        async for message in conn:
            await conn.send(message)


async def main(args: argparse.Namespace) -> None:
    slots = asyncio.Semaphore(args.limit)
    work_s = args.work_ms / 1000.0

    async def slow_handshake(conn: ServerConnection, request: Request) -> None:
        async with slots:
            await asyncio.sleep(work_s)

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        echo,
        "127.0.0.1",
        args.port,
        process_request=slow_handshake if work_s > 0 else None,
        backlog=args.backlog,
        compression=None,
        ping_interval=None,  # idle connections stay idle (S4 measures the proxy, not pings)
        open_timeout=None,  # a queued handshake waits for its turn; the proxy decides when to quit
        max_size=None,
    ):
        print(f"backend ready on 127.0.0.1:{args.port}", flush=True)
        await stop


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--work-ms", type=float, default=0.0)
    parser.add_argument("--limit", type=int, default=1)
    parser.add_argument("--backlog", type=int, default=16)
    return parser.parse_args(argv)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(parse(sys.argv[1:])))
