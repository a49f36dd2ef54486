"""`wsgate demo`: the gateway on 127.0.0.1:8080 in front of two in-process backends built
with the `websockets` library: an echo endpoint and a small broadcast chat with a page;
the dashboard on 127.0.0.1:8081. `--storm` adds a slow backend and a storm of handshakes
against it, so that the dashboard shows queueing, shedding and their causes at once."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import sys
from importlib import resources
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from wsgate.config import parse_config
from wsgate.gateway.server import Gateway

DEMO_DRAIN_S = 2.0
# The storm of `demo --storm`: more handshakes than the slow backend completes, for a
# minute, each tunnel held a while; bounded in count and time, on 127.0.0.1 only.
STORM_RATE_PER_S = 40
STORM_S = 60.0
STORM_HOLD_S = 2.0
SLOW_HANDSHAKE_S = 0.25
SLOW_SLOTS = 2


async def echo(conn: ServerConnection) -> None:
    # A connection the gateway ends without a close frame (Ctrl-C with tunnels open) is
    # the end of the demo, not an error worth a traceback.
    with contextlib.suppress(ConnectionClosed):
        async for message in conn:
            await conn.send(message)


class Chat:
    """Every message a client sends goes to every connected client."""

    def __init__(self) -> None:
        self.members: set[ServerConnection] = set()
        self.page = resources.files("wsgate.gateway").joinpath("demo_chat.html").read_bytes()

    async def handler(self, conn: ServerConnection) -> None:
        self.members.add(conn)
        try:
            broadcast(self.members, f"* someone joined ({len(self.members)} here)")
            with contextlib.suppress(ConnectionClosed):  # as in echo
                async for message in conn:
                    text = (
                        message if isinstance(message, str) else message.decode("utf-8", "replace")
                    )
                    broadcast(self.members, text[:1000])
        finally:
            self.members.discard(conn)
            broadcast(self.members, f"* someone left ({len(self.members)} here)")

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """Serve the chat page for plain GETs; let WebSocket upgrades through."""
        if "upgrade" in request.headers.get("Connection", "").lower():
            return None
        headers = Headers(
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(self.page))),
                ("Cache-Control", "no-store"),
            ]
        )
        return Response(200, "OK", headers, self.page)


def slow_handshakes() -> Any:
    """A backend's process_request that takes SLOW_HANDSHAKE_S per handshake, at most
    SLOW_SLOTS at once: a backend that cannot keep up with a storm."""
    slots = asyncio.Semaphore(SLOW_SLOTS)

    async def process_request(conn: ServerConnection, request: Request) -> Response | None:
        async with slots:
            await asyncio.sleep(SLOW_HANDSHAKE_S)
        return None

    return process_request


async def demo_storm(url: str, stop: asyncio.Event) -> None:
    """STORM_RATE_PER_S handshakes a second for STORM_S, each held STORM_HOLD_S."""

    async def one() -> None:
        with contextlib.suppress(Exception):  # 503s are the point of the storm
            async with connect(url, open_timeout=30, close_timeout=1) as ws:
                await asyncio.sleep(STORM_HOLD_S)
                await ws.send("storm")

    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    end = loop.time() + STORM_S
    while loop.time() < end and not stop.is_set():
        task = loop.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(1 / STORM_RATE_PER_S)
    for task in list(tasks):
        task.cancel()
    print("wsgate demo: the storm is over", file=sys.stderr, flush=True)


async def _start_backends(chat: Chat) -> tuple[Server, Server]:
    echo_server = await serve(echo, "127.0.0.1", 0)
    chat_server = await serve(chat.handler, "127.0.0.1", 0, process_request=chat.process_request)
    return echo_server, chat_server


def _port(server: Server) -> int:
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


def demo_config(port: int, admin_port: int, backends: dict[str, int]) -> dict[str, Any]:
    """The demo's config: a pool per backend, /echo, /slow (with --storm) and the chat
    at /; the slow pool admits two handshakes at once and queues 50 for up to 3 s."""
    pools: dict[str, Any] = {name: {"backends": [f"127.0.0.1:{p}"]} for name, p in backends.items()}
    routes = [{"path_prefix": f"/{name}", "pool": name} for name in backends if name != "chat"]
    if "slow" in pools:
        pools["slow"].update(
            max_handshakes_per_backend=SLOW_SLOTS, queue_size=50, queue_timeout_s=3
        )
    return {
        "server": {
            "listen": [f"127.0.0.1:{port}"],
            "drain_timeout_s": DEMO_DRAIN_S,
            "client_script_path": "/wsgate-client.js",
        },
        "admin": {"listen": f"127.0.0.1:{admin_port}"},
        "pools": pools,
        "routes": [*routes, {"path_prefix": "/", "pool": "chat"}],
    }


async def run_demo_forever(port: int, admin_port: int | None = None, storm: bool = False) -> None:
    chat = Chat()
    echo_server, chat_server = await _start_backends(chat)
    servers = [echo_server, chat_server]
    backends = {"echo": _port(echo_server), "chat": _port(chat_server)}
    if storm:
        slow = await serve(echo, "127.0.0.1", 0, process_request=slow_handshakes())
        servers.append(slow)
        backends["slow"] = _port(slow)
    admin_port = port + 1 if admin_port is None else admin_port
    config = parse_config(demo_config(port, admin_port, backends), "demo")
    gateway = Gateway(config)
    await gateway.start()
    base = f"127.0.0.1:{port}"
    dashboard = f"http://{gateway.admin.address() if gateway.admin else admin_port}/"
    # The interpreter wsgate runs on has `websockets`; a bare `python` may not (no venv).
    python = shlex.quote(sys.executable)
    print(
        f"wsgate demo: the gateway listens on http://{base}/\n"
        f"  dashboard:   {dashboard}   (metrics: {dashboard}metrics)\n"
        f"  chat page:   http://{base}/       (open it in two browser tabs)\n"
        f"  chat socket: ws://{base}/chat\n"
        f"  echo socket: ws://{base}/echo   (try: {python} -m websockets ws://{base}/echo)\n"
        "  JSON log lines go to stderr. Ctrl-C stops.",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    storming: asyncio.Task[None] | None = None
    if storm:
        print(
            f"wsgate demo: storming ws://{base}/slow with {STORM_RATE_PER_S} handshakes a "
            f"second for {STORM_S:g} s; its backend completes about "
            f"{SLOW_SLOTS / SLOW_HANDSHAKE_S:g} a second. Watch the queue, the 503s and their "
            f"causes on {dashboard}",
            flush=True,
        )
        storming = loop.create_task(demo_storm(f"ws://{base}/slow", stop))
    await stop.wait()
    if storming is not None:
        storming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await storming
    print("wsgate demo: stopping", file=sys.stderr, flush=True)
    await gateway.drain(DEMO_DRAIN_S)
    for server in servers:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), DEMO_DRAIN_S)
