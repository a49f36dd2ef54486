"""`wsgate demo`: the gateway on 127.0.0.1:8080 in front of two in-process backends built
with the `websockets` library: an echo endpoint and a small broadcast chat with a page."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from importlib import resources

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from wsgate.config import parse_config
from wsgate.gateway.server import Gateway

DEMO_DRAIN_S = 2.0


async def _echo(conn: ServerConnection) -> None:
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
            async for message in conn:
                text = message if isinstance(message, str) else message.decode(errors="replace")
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


async def _start_backends(chat: Chat) -> tuple[Server, Server]:
    echo_server = await serve(_echo, "127.0.0.1", 0)
    chat_server = await serve(chat.handler, "127.0.0.1", 0, process_request=chat.process_request)
    return echo_server, chat_server


def _port(server: Server) -> int:
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


async def run_demo_forever(port: int) -> None:
    chat = Chat()
    echo_server, chat_server = await _start_backends(chat)
    config = parse_config(
        {
            "server": {"listen": [f"127.0.0.1:{port}"], "drain_timeout_s": DEMO_DRAIN_S},
            "pools": {
                "echo": {"backends": [f"127.0.0.1:{_port(echo_server)}"]},
                "chat": {"backends": [f"127.0.0.1:{_port(chat_server)}"]},
            },
            "routes": [
                {"path_prefix": "/echo", "pool": "echo"},
                {"path_prefix": "/", "pool": "chat"},
            ],
        },
        "demo",
    )
    gateway = Gateway(config)
    await gateway.start()
    base = f"127.0.0.1:{port}"
    print(
        f"wsgate demo: the gateway listens on http://{base}/\n"
        f"  chat page:   http://{base}/       (open it in two browser tabs)\n"
        f"  chat socket: ws://{base}/chat\n"
        f"  echo socket: ws://{base}/echo   (try: python -m websockets ws://{base}/echo)\n"
        "  JSON log lines go to stderr. Ctrl-C stops.",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    print("wsgate demo: stopping", file=sys.stderr, flush=True)
    await gateway.drain(DEMO_DRAIN_S)
    for server in (echo_server, chat_server):
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), DEMO_DRAIN_S)
