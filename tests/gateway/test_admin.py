"""The admin listener's I/O (admin.py) in this process, over a real socket on 127.0.0.1
with a fake StateSource, on asyncio's loop and uvloop's: what each page fetches, the read
limits, the event stream, a drain carried out. Its rules without a socket:
test_admin_routes.py; tests/e2e/test_admin_*.py run the same API in a real gateway."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop
from prometheus_client import CollectorRegistry

from tests.support.procs import free_port
from wsgate.config.model import Address, AdminConfig
from wsgate.findings import CATALOGUE
from wsgate.gateway.admin import MAX_HEAD_BYTES, SSE_KEEPALIVE_S, AdminServer, bind
from wsgate.gateway.admin_routes import CSP, EVENTS_HEAD, MAX_BODY_BYTES
from wsgate.gateway.monitor import merge
from wsgate.observe.log import JsonLog
from wsgate.observe.metrics import CONTENT_TYPE, Metrics

TOKEN = "s3cret-token"
B1 = "127.0.0.1:9001"


# == the listener over a real socket =========================================================
DEADLINE_S = 30.0
CAUSE = "upstream_connect_refused"
Runner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a test's coroutine on asyncio's loop, then on uvloop's (the one `serve` uses)."""
    if request.param == "uvloop":
        return uvloop.run
    return asyncio.run


def worker_snapshot(*, ready: bool) -> dict[str, Any]:
    """One worker's snapshot, shaped as monitor.snapshot writes it."""
    backend = {
        "name": B1,
        "up": True,
        "ejected": False,
        "ejected_for_s": 0.0,
        "drained": False,
        "healthy": True,
        "share": 1.0,
        "limit": 8,
        "inflight": 1,
        "tunnels": 3,
        "open": 3,
    }
    pool = {"queue": 0, "queue_size": 10, "queue_timeout_s": 5.0, "inflight": 1}
    return {
        "pid": 4242,
        "time": 100.0,
        "phase": "running",
        "listening": ["127.0.0.1:8080"],
        "connections": 3,
        "ready": ready,
        "reasons": [] if ready else ["not listening"],
        "routes": [{"host": "", "path_prefix": "/", "pool": "app"}],
        "pools": {"app": {**pool, "backends": [backend]}},
        "errors": [{"time": 99.0, "cause": CAUSE, "pool": "app", "backend": B1, "detail": "d"}],
    }


class FakeSource:
    """A StateSource over one literal worker snapshot, recording the drains asked."""

    def __init__(self, *, ready: bool = True, metrics: Metrics | None = None) -> None:
        self.ready = ready
        self.metrics = metrics
        self.drains: list[tuple[str, bool, float]] = []

    def state(self) -> dict[str, Any]:
        return merge([worker_snapshot(ready=self.ready)])

    def registry(self) -> CollectorRegistry | None:
        return self.metrics.registry if self.metrics is not None else None

    def set_drained(self, backend: str, drained: bool, over_s: float) -> None:
        self.drains.append((backend, drained, over_s))


class Listener:
    """An AdminServer on a socket bound to 127.0.0.1 by the test, its log in memory."""

    def __init__(self, source: FakeSource, config: AdminConfig | None = None) -> None:
        self.stream = io.StringIO()
        self.server = AdminServer(source, config or AdminConfig(enabled=True), JsonLog(self.stream))
        self.port = 0

    async def __aenter__(self) -> Listener:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        await self.server.start(sock)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    async def ask(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send `data`, read the whole answer (the listener closes after each)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            async with asyncio.timeout(DEADLINE_S):
                answer = await reader.read()
        finally:
            writer.close()
        return split(answer)


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    top, _, body = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers[name] = value
    return int(lines[0].split(" ")[1]), headers, body


def get(path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def test_the_pages_are_fetched_from_the_source(run: Runner) -> None:
    async def main() -> None:
        async with Listener(FakeSource(ready=False)) as admin:
            status, headers, body = await admin.ask(get("/api/state"))
            assert status == 200 and headers["Content-Type"] == "application/json"
            state = json.loads(body)
            assert state["workers"] == 1 and state["pools"]["app"]["backends"][0]["name"] == B1
            (error,) = state["errors"]
            assert error["summary"] == CATALOGUE[CAUSE].summary and error["fix"]
            assert error["status"] == CATALOGUE[CAUSE].status

            status, _, body = await admin.ask(get("/readyz"))
            assert status == 503 and json.loads(body)["reasons"] == ["not listening"]

            status, _, body = await admin.ask(get("/healthz"))
            alive = json.loads(body)
            assert status == 200 and alive["pid"] == os.getpid() and alive["up_s"] >= 0

            status, headers, body = await admin.ask(get("/"))
            assert status == 200 and b"/dashboard.js" in body
            assert headers["Content-Security-Policy"] == CSP
            assert int(headers["Content-Length"]) == len(body)

            status, _, _ = await admin.ask(get("/metrics"))
            assert status == 404  # the source has no registry: metrics are off

    run(main())


def test_metrics_are_the_registry_in_prometheus_text(run: Runner) -> None:
    async def main() -> None:
        metrics = Metrics()
        metrics.upgrades.labels("app", B1).inc(3)
        async with Listener(FakeSource(metrics=metrics)) as admin:
            status, headers, body = await admin.ask(get("/metrics"))
            assert status == 200 and headers["Content-Type"] == CONTENT_TYPE
            assert f'wsgate_upgrades_total{{backend="{B1}",pool="app"}} 3.0' in body.decode()
            (line,) = [json.loads(x) for x in admin.stream.getvalue().splitlines()]
            assert line["event"] == "admin_listening" and line["metrics"] is True

    run(main())


def test_a_drain_and_an_enable_are_carried_out_on_the_source(run: Runner) -> None:
    async def main() -> None:
        source = FakeSource()
        config = AdminConfig(enabled=True, backend_drain_s=12.0)
        async with Listener(source, config) as admin:
            status, _, body = await admin.ask(get(f"/api/backends/{B1}/drain", "POST"))
            assert status == 202 and json.loads(body)["over_s"] == 12.0
            # A body is read and ignored; the answer comes after it.
            sized = "Content-Length: 5\r\n"
            enable = get(f"/api/backends/{B1}/enable?over_s=1", "POST", sized) + b"hello"
            status, _, _ = await admin.ask(enable)
            assert status == 202
            status, _, _ = await admin.ask(get("/api/backends/127.0.0.1:1/drain", "POST"))
            assert status == 404
            status, _, _ = await admin.ask(get(f"/api/backends/{B1}/drain?over_s=-1", "POST"))
            assert status == 400
            assert source.drains == [(B1, True, 12.0), (B1, False, 1.0)]

    run(main())


def test_a_head_too_large_malformed_or_with_too_large_a_body_is_refused(run: Runner) -> None:
    async def main() -> None:
        async with Listener(FakeSource()) as admin:
            padding = "X-Pad: " + "a" * MAX_HEAD_BYTES + "\r\n"
            status, _, body = await admin.ask(get("/healthz", extra=padding))
            assert status == 431 and json.loads(body) == {"error": "request head too large"}
            status, _, _ = await admin.ask(b"NONSENSE\r\n\r\n")
            assert status == 400
            # The body is refused from its declared length: it is never sent.
            too_large = f"Content-Length: {MAX_BODY_BYTES + 1}\r\n"
            status, _, _ = await admin.ask(get(f"/api/backends/{B1}/drain", "POST", too_large))
            assert status == 413
            status, headers, _ = await admin.ask(get(f"/api/backends/{B1}/drain"))
            assert status == 405 and headers["Allow"] == "POST"

    run(main())


def test_the_event_stream_sends_a_frame_at_once_and_ends_with_the_listener(run: Runner) -> None:
    async def main() -> None:
        admin = Listener(FakeSource())
        await admin.__aenter__()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", admin.port)
            writer.write(get("/api/events"))
            async with asyncio.timeout(DEADLINE_S):
                assert await reader.readexactly(len(EVENTS_HEAD)) == EVENTS_HEAD
                line = await reader.readuntil(b"\n\n")
            assert line.startswith(b"data: ")
            frame = json.loads(line[len(b"data: ") :])
            assert frame["workers"] == 1 and frame["tunnels"] == 3
        finally:
            await admin.__aexit__()
        # Closing the listener ends the stream at once, not at the next keep-alive: the
        # read below reaches the end well within its deadline, or the test fails.
        async with asyncio.timeout(SSE_KEEPALIVE_S / 2):
            await reader.read()
        writer.close()

    run(main())


def test_start_binds_the_configured_address_and_says_so(run: Runner) -> None:
    async def main() -> None:
        port = free_port()
        listen = Address("127.0.0.1", port)
        stream = io.StringIO()
        server = AdminServer(FakeSource(), AdminConfig(True, listen, TOKEN), JsonLog(stream))
        await server.start()
        try:
            assert server.address() == f"127.0.0.1:{port}"
        finally:
            await server.close()
        (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
        assert line["event"] == "admin_listening" and line["auth"] == "bearer token"
        assert line["dashboard"] == f"http://127.0.0.1:{port}/" and line["metrics"] is False

    run(main())


def test_bind_takes_the_port_before_the_fork_and_a_busy_one_raises() -> None:
    config = AdminConfig(True, Address("127.0.0.1", free_port()))
    sock = bind(config)
    try:
        assert sock.getsockname() == ("127.0.0.1", config.listen.port)
        with pytest.raises(OSError):
            bind(config).close()
    finally:
        sock.close()
