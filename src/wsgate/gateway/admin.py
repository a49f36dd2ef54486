"""The admin listener: its own asyncio server, apart from the traffic listeners, so that
its requests never wait behind handshakes in a pool's queue.

    GET  /                 the live dashboard (dashboard.html, .js, .css from the package)
    GET  /api/events       the dashboard's frames, one a second (server-sent events)
    GET  /api/state        routes, pools, backends, queues, latest errors explained
    GET  /metrics          Prometheus text format (404 when `[admin] metrics = false`)
    GET  /healthz          200 while the process answers
    GET  /readyz           200 when ready (listening, running, a healthy backend for
                           every route), else 503; JSON with the reasons either way
    POST /api/backends/NAME/drain[?over_s=S]   take a backend out, closing its tunnels
    POST /api/backends/NAME/enable             evenly over S seconds; put it back

Bound to loopback, it takes requests whose Host is a loopback name (no DNS rebinding);
bound elsewhere it needs `Authorization: Bearer TOKEN` (or the cookie that `/?token=TOKEN`
sets for a browser), compared in constant time. /healthz and /readyz need no token, for
probes. A POST from a page of another origin is refused (no cross-site requests).

Those rules, the routes and the answers' bytes are pure, in admin_routes.py; this module
reads, fetches and writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from importlib import resources
from pathlib import Path

from wsgate.config.model import AdminConfig
from wsgate.gateway.admin_routes import (
    BODY_TOO_LARGE,
    EVENTS_HEAD,
    HEAD_TOO_LARGE,
    MALFORMED,
    METRICS_OFF,
    Asset,
    BackendPost,
    Drain,
    Page,
    Reply,
    Request,
    alive_reply,
    asset_reply,
    body_length,
    decide,
    json_reply,
    parse_head,
    ready_reply,
    to_json,
)
from wsgate.gateway.monitor import DirSource, StateSource, backend_names, explain
from wsgate.observe.dashboard import Feed
from wsgate.observe.log import JsonLog
from wsgate.observe.metrics import CONTENT_TYPE, exposition

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
FRAME_S = 1.0  # the dashboard's frames
SSE_KEEPALIVE_S = 15.0


def asset(name: str) -> bytes:
    return resources.files("wsgate.observe").joinpath(name).read_bytes()


class AdminServer:
    def __init__(self, source: StateSource, config: AdminConfig, log: JsonLog) -> None:
        self.source = source
        self.config = config
        self.log = log
        self.feed = Feed()
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._subscribers: set[asyncio.Queue[bytes]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._last_frame: bytes | None = None
        self._started = time.time()

    # == lifetime ===========================================================================
    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on `sock`, or bind the config's address (OSError when it cannot be
        bound), and say so, with the auth."""
        listen = self.config.listen
        if sock is not None:
            self._server = await asyncio.start_server(self._handle, sock=sock, limit=MAX_HEAD_BYTES)
        else:
            self._server = await asyncio.start_server(
                self._handle, listen.host, listen.port, limit=MAX_HEAD_BYTES, reuse_address=True
            )
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        auth = "bearer token" if self.config.token else "none (loopback only)"
        self.log.event(
            "admin_listening",
            address=self.address(),
            dashboard=f"http://{self.address()}/",
            auth=auth,
            metrics=self.source.registry() is not None,
        )

    def address(self) -> str:
        assert self._server is not None
        sock = self._server.sockets[0]
        host, port = sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    # == the dashboard's frames =============================================================
    def frame(self) -> bytes:
        registry = self.source.registry()
        families = list(registry.collect()) if registry is not None else None
        return to_json(self.feed.frame(families, self.source.state(), time.time()))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(FRAME_S)
            if not self._subscribers:
                continue
            try:
                data = self.frame()
            except Exception as exc:  # a half-written worker file, say: next second
                self.log.event("admin_frame_failed", detail=repr(exc))
                continue
            self._last_frame = data
            for queue in self._subscribers:
                if queue.full():
                    queue.get_nowait()  # a slow reader gets the newest frame, not a backlog
                queue.put_nowait(data)

    # == requests ===========================================================================
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await self._send(writer, HEAD_TOO_LARGE)
            return
        request = parse_head(head)
        if request is None:
            await self._send(writer, MALFORMED)
            return
        length = body_length(request)
        if length is None:
            await self._send(writer, BODY_TOO_LARGE)
            return
        if length:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                await reader.readexactly(length)  # nothing in it is used
        answer = decide(request, self.config.token)
        if answer is Page.EVENTS:
            await self._events(writer)
        else:
            await self._send(writer, self._answer(request, answer))

    def _answer(self, request: Request, answer: Reply | Asset | Page | BackendPost) -> Reply:
        """The reply to what `decide` named, fetched from the source (or the package)."""
        if isinstance(answer, Reply):
            return answer
        if isinstance(answer, Asset):
            return asset_reply(answer, asset(answer.name))
        if isinstance(answer, BackendPost):
            done = answer.resolve(backend_names(self.source.state()), self.config.backend_drain_s)
            if isinstance(done, Drain):
                self.source.set_drained(done.backend, done.drained, done.over_s)
                return done.reply()
            return done
        if answer is Page.STATE:
            state = self.source.state()
            for error in state["errors"]:
                error.update(explain(error["cause"]))
            return json_reply(200, state)
        if answer is Page.METRICS:
            registry = self.source.registry()
            if registry is None:
                return METRICS_OFF
            return Reply(200, exposition(registry), CONTENT_TYPE)
        if answer is Page.HEALTH:
            return alive_reply(os.getpid(), time.time() - self._started)
        assert answer is Page.READY, answer  # EVENTS streams: _serve took it
        return ready_reply(self.source.state())

    async def _events(self, writer: asyncio.StreamWriter) -> None:
        writer.write(EVENTS_HEAD)
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2)
        first = self._last_frame or self.frame()
        queue.put_nowait(first)
        self._subscribers.add(queue)
        try:
            while not writer.is_closing():
                try:
                    async with asyncio.timeout(SSE_KEEPALIVE_S):
                        data = await queue.get()
                    writer.write(b"data: " + data + b"\n\n")
                except TimeoutError:
                    writer.write(b": keepalive\n\n")
                async with asyncio.timeout(SSE_KEEPALIVE_S):
                    await writer.drain()
        finally:
            self._subscribers.discard(queue)

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        writer.write(reply.encode())
        await writer.drain()


# == the admin process of `serve --workers N` ================================================
WORKERS_GONE_POLL_S = 0.2


def bind(config: AdminConfig) -> socket.socket:
    """The admin listener's socket, bound by the parent before it forks (OSError when it
    cannot be), so that a busy port stops `serve` at once, as a traffic port does."""
    host = config.listen.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, config.listen.port), family=family, backlog=128)


async def serve_admin_process(
    config: AdminConfig, sock: socket.socket, run_dir: Path, log: JsonLog, drain_s: float
) -> None:
    """Serve the admin listener over the workers' snapshots in `run_dir` until SIGINT or
    SIGTERM, then until the workers are gone (they drain for up to `drain_s`), so that
    /readyz says "draining" meanwhile."""
    loop = asyncio.get_running_loop()
    source = DirSource(run_dir, metrics=config.metrics)
    server = AdminServer(source, config, log)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the parent logs it
    await server.start(sock)
    await stop.wait()
    # The workers are other processes: nothing here is woken when they end, so look.
    deadline = loop.time() + drain_s
    while source.snapshots() and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(WORKERS_GONE_POLL_S)
    await server.close()
