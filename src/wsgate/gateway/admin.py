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
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import os
import signal
import socket
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from wsgate.config.load import is_loopback
from wsgate.config.model import AdminConfig
from wsgate.gateway.monitor import DirSource, StateSource, backend_names, explain
from wsgate.observe.dashboard import Feed
from wsgate.observe.log import JsonLog
from wsgate.observe.metrics import CONTENT_TYPE, exposition

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 4096
HEAD_TIMEOUT_S = 10.0
FRAME_S = 1.0  # the dashboard's frames
SSE_KEEPALIVE_S = 15.0
MAX_DRAIN_S = 86_400.0
COOKIE = "wsgate_admin"
ASSETS = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
REASONS = {
    200: "OK",
    202: "Accepted",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def asset(name: str) -> bytes:
    return resources.files("wsgate.observe").joinpath(name).read_bytes()


class Request:
    __slots__ = ("headers", "method", "path", "query")

    def __init__(self, method: str, target: str, headers: dict[str, str]) -> None:
        parts = urlsplit(target)
        self.method = method
        self.path = parts.path
        self.query = parse_qs(parts.query)
        self.headers = headers


def parse_head(head: bytes) -> Request | None:
    """The request line and headers (names in lower case); None when malformed."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/1.") or not target.startswith("/"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


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
        self._token = config.token.encode()
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
        auth = "bearer token" if self._token else "none (loopback only)"
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
        return _json(self.feed.frame(families, self.source.state(), time.time()))

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
            await self._send(writer, 431, {"error": "request head too large"})
            return
        request = parse_head(head)
        if request is None:
            await self._send(writer, 400, {"error": "malformed request"})
            return
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            await self._send(writer, 413, {"error": f"a body of at most {MAX_BODY_BYTES} bytes"})
            return
        if int(length):
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                await reader.readexactly(int(length))  # nothing in it is used
        refusal = self._refusal(request)
        if refusal is not None:
            status, why = refusal
            headers = [("WWW-Authenticate", 'Bearer realm="wsgate"')] if status == 401 else []
            await self._send(writer, status, {"error": why}, headers)
            return
        await self._route(request, writer)

    def _refusal(self, request: Request) -> tuple[int, str] | None:
        """Why this request is refused before routing, or None."""
        if request.path in ("/healthz", "/readyz"):
            return None
        if self._token:
            if not self._authorized(request):
                return 401, "a bearer token is required (Authorization: Bearer TOKEN)"
        else:
            host = request.headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if not is_loopback(name.strip("[]")):
                return 403, f"Host {host!r} is not a loopback name"
        origin = request.headers.get("origin")
        cross = origin is not None and urlsplit(origin).netloc != request.headers.get("host")
        if request.method == "POST" and cross:
            return 403, "cross-origin POST refused"
        return None

    def _authorized(self, request: Request) -> bool:
        given = b""
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip().encode()
        else:
            for part in request.headers.get("cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == COOKIE:
                    given = value.encode()
        if request.path == "/" and "token" in request.query:
            given = request.query["token"][0].encode()
        return hmac.compare_digest(given, self._token)

    async def _route(self, request: Request, writer: asyncio.StreamWriter) -> None:
        path, method = request.path, request.method
        if path.startswith("/api/backends/"):
            if method != "POST":
                await self._send(writer, 405, {"error": "POST only"}, [("Allow", "POST")])
                return
            await self._backend_action(request, writer)
            return
        if method not in ("GET", "HEAD"):
            await self._send(writer, 405, {"error": "GET only"}, [("Allow", "GET, HEAD")])
            return
        if path == "/" and self._token and "token" in request.query:
            # The browser keeps the token in a cookie, and the address bar loses it.
            cookie = f"{COOKIE}={self.config.token}; HttpOnly; SameSite=Strict; Path=/"
            await self._send(writer, 303, {}, [("Location", "/"), ("Set-Cookie", cookie)])
        elif path in ASSETS:
            name, content_type = ASSETS[path]
            await self._send_raw(
                writer, 200, asset(name), content_type, [("Content-Security-Policy", CSP)]
            )
        elif path == "/api/events":
            await self._events(writer)
        elif path == "/api/state":
            state = self.source.state()
            for error in state["errors"]:
                error.update(explain(error["cause"]))
            await self._send(writer, 200, state)
        elif path == "/metrics":
            registry = self.source.registry()
            if registry is None:
                await self._send(writer, 404, {"error": "metrics are off ([admin] metrics)"})
            else:
                await self._send_raw(writer, 200, exposition(registry), CONTENT_TYPE)
        elif path == "/healthz":
            uptime = round(time.time() - self._started, 1)
            await self._send(writer, 200, {"status": "alive", "pid": os.getpid(), "up_s": uptime})
        elif path == "/readyz":
            state = self.source.state()
            body = {
                "ready": state["ready"],
                "phase": state["phase"],
                "workers": state["workers"],
                "reasons": state["reasons"],
            }
            await self._send(writer, 200 if state["ready"] else 503, body)
        else:
            await self._send(writer, 404, {"error": f"no such page: {path}"})

    async def _backend_action(self, request: Request, writer: asyncio.StreamWriter) -> None:
        name, _, action = request.path.removeprefix("/api/backends/").rpartition("/")
        name = unquote(name)
        if action not in ("drain", "enable") or not name:
            await self._send(writer, 404, {"error": "POST /api/backends/NAME/drain or enable"})
            return
        if name not in backend_names(self.source.state()):
            await self._send(writer, 404, {"error": f"no backend called {name!r}"})
            return
        over_s = self.config.backend_drain_s
        if "over_s" in request.query:
            try:
                over_s = float(request.query["over_s"][0])
            except ValueError:
                over_s = -1.0
            if not (math.isfinite(over_s) and 0 <= over_s <= MAX_DRAIN_S):
                await self._send(writer, 400, {"error": f"over_s: 0 to {MAX_DRAIN_S:g} seconds"})
                return
        drained = action == "drain"
        self.source.set_drained(name, drained, over_s)
        body: dict[str, Any] = {"backend": name, "drained": drained}
        if drained:
            body["over_s"] = over_s
        await self._send(writer, 202, body)

    async def _events(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            b"X-Accel-Buffering: no\r\n\r\nretry: 1000\n\n"
        )
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

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: Any,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        await self._send_raw(writer, status, _json(body), "application/json", headers)

    async def _send_raw(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
            "Connection: close",
            *(f"{name}: {value}" for name, value in headers or ()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
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
