"""S5's backend: a `websockets` echo server with a fixed handshake capacity that counts
its handshakes per 100 ms.

`--work-ms W --slots L`: each handshake awaits W ms of work with at most L at a time, so
the backend completes at most L * 1000 / W handshakes per second. On SIGTERM it closes
its connections (1001, going away) and writes `--counts FILE`: {"buckets": {tenth of a
wall-clock second: handshakes completed in it}}; wall-clock so that the scenario can put
two backends' counts side by side. Run from the repository root:
python -m bench.reconnect_backend --port 9001 --work-ms 40 --slots 4 --counts c.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request


async def echo(conn: ServerConnection) -> None:
    with contextlib.suppress(Exception):
        async for message in conn:
            await conn.send(message)


async def main(args: argparse.Namespace, buckets: Counter[int]) -> None:
    slots = asyncio.Semaphore(args.slots)
    work_s = args.work_ms / 1000.0

    async def counted_handshake(conn: ServerConnection, request: Request) -> None:
        async with slots:
            if work_s > 0:
                await asyncio.sleep(work_s)
        buckets[int(time.time() * 10)] += 1

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        echo,
        "127.0.0.1",
        args.port,
        process_request=counted_handshake,
        backlog=args.backlog,
        compression=None,
        ping_interval=None,
        open_timeout=None,  # a queued handshake waits for its slot; the client decides
        max_size=None,
    ):
        print(f"backend ready on 127.0.0.1:{args.port}", flush=True)
        await stop
        # Before the server closes its connections, which can outlast the bench's wait
        # for this process (and a SIGKILL would lose the counts).
        write_counts(args.counts, buckets)


def write_counts(path: str, buckets: Counter[int]) -> None:
    text = json.dumps({"buckets": {str(k): v for k, v in sorted(buckets.items())}})
    Path(path).write_text(text)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--work-ms", type=float, default=0.0)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--counts", required=True, help="JSON file written on exit")
    return parser.parse_args(argv)


if __name__ == "__main__":
    import uvloop

    arguments = parse(sys.argv[1:])
    counted: Counter[int] = Counter()
    try:
        uvloop.run(main(arguments, counted))
    finally:
        write_counts(arguments.counts, counted)  # again: the handshakes during the close
