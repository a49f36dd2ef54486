"""In-process `websockets` servers on 127.0.0.1 for end-to-end tests.

Each server runs its own event loop in a daemon thread, so a test can use the sync
`websockets` client or another process against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from tests.support.procs import Proc, running

Handler = Callable[[ServerConnection], Awaitable[None]]


async def echo(conn: ServerConnection) -> None:
    """Echo every message back, text as text and binary as binary."""
    async for message in conn:
        await conn.send(message)


@contextlib.contextmanager
def ws_server(handler: Handler = echo, port: int = 0, **serve_kwargs: Any) -> Iterator[int]:
    """Run a websockets server on 127.0.0.1; yields its port. Stops it on exit."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None
    bound: list[int] = []
    errors: list[BaseException] = []

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        try:
            server = await serve(handler, "127.0.0.1", port, **serve_kwargs)
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)
            ready.set()
            return
        async with server:
            bound.append(next(iter(server.sockets)).getsockname()[1])
            ready.set()
            await stop

    def run() -> None:
        loop.run_until_complete(main())
        # As asyncio.run does: what is still under way is cancelled and let finish before
        # the loop closes. An accept that the server's close overtook is such a task; left
        # pending, its socket outlived the loop and warned (ResourceWarning) in a later test.
        loop.run_until_complete(cancel_the_rest())

    async def cancel_the_rest() -> None:
        rest = asyncio.all_tasks() - {asyncio.current_task()}
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(20):
        raise TimeoutError("websockets server did not start")
    if errors:
        raise errors[0]
    try:
        yield bound[0]
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(20)
        loop.close()


@contextlib.contextmanager
def named_backend(tmp_path: Path, port: int, name: str, *extra: str) -> Iterator[Proc]:
    """tests/support/named_backend.py in its own process on `port`, so that a test can kill
    and restart it by PID; `extra` are its flags (--slow-handshake, --slots). Its log has a
    `handshake PATH` line for each slow handshake it does."""
    argv = [sys.executable, "-m", "tests.support.named_backend", str(port), name, *extra]
    with running(argv, tmp_path / f"backend-{name}-{port}-{time.monotonic_ns()}.log", port) as proc:
        yield proc
