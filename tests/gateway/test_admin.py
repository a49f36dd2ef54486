"""The admin listener. Its rules (admin_routes.py) fed request heads, no socket: the head
parser, the body limit at N and N+1, the token, Host and Origin rules, the routes, the
drain/enable arguments and the answers' bytes. Then its I/O (admin.py) in this process,
over a real socket on 127.0.0.1 with a fake StateSource, on asyncio's loop and uvloop's:
what each page fetches, the read limits, the event stream, a drain carried out.
tests/e2e/test_admin_*.py run the same API in a real gateway."""

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
from wsgate.gateway.admin_routes import (
    COOKIE,
    CSP,
    EVENTS_HEAD,
    MAX_BODY_BYTES,
    MAX_DRAIN_S,
    Asset,
    BackendPost,
    Drain,
    Page,
    Reply,
    Request,
    alive_reply,
    body_length,
    decide,
    parse_head,
    ready_reply,
    refusal,
)
from wsgate.gateway.monitor import merge
from wsgate.observe.log import JsonLog
from wsgate.observe.metrics import CONTENT_TYPE, Metrics

TOKEN = "s3cret-token"
LOCAL = "127.0.0.1:9090"
B1 = "127.0.0.1:9001"


def head(
    method: str = "GET", target: str = "/api/state", host: str | None = LOCAL, **headers: str
) -> Request:
    """A parsed head; keyword headers with _ for - (user_agent= is User-Agent)."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    request = parse_head(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert request is not None
    return request


def body_of(reply: Reply) -> Any:
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


def refused(reply: Reply | Asset | Page | BackendPost) -> tuple[int, str]:
    assert isinstance(reply, Reply), reply
    return reply.status, body_of(reply).get("error", "")


# == the head ================================================================================
def test_a_head_is_parsed_with_lower_case_names_and_the_query() -> None:
    request = parse_head(
        b"POST /api/backends/a/drain?over_s=2&x=1 HTTP/1.0\r\nHost: h:1\r\n"
        b"X-Thing :  spaced value \r\n\r\n"
    )
    assert request is not None
    assert (request.method, request.path) == ("POST", "/api/backends/a/drain")
    assert request.query == {"over_s": ["2"], "x": ["1"]}
    assert request.headers == {"host": "h:1", "x-thing": "spaced value"}


@pytest.mark.parametrize(
    "data",
    [
        b"GET /\r\n\r\n",  # no version
        b"GET  / HTTP/1.1\r\n\r\n",  # two spaces: four parts
        b"GET / HTTP/2\r\n\r\n",
        b"GET http://h/ HTTP/1.1\r\n\r\n",  # absolute form: not for this listener
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"",
    ],
)
def test_a_malformed_head_is_none(data: bytes) -> None:
    assert parse_head(data) is None


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (None, 0),
        ("0", 0),
        ("12", 12),
        (str(MAX_BODY_BYTES), MAX_BODY_BYTES),
        (str(MAX_BODY_BYTES + 1), None),
        ("-1", None),
        ("1.5", None),
        ("", None),
        ("ten", None),
    ],
)
def test_the_body_may_be_up_to_the_limit(length: str | None, expected: int | None) -> None:
    headers = {} if length is None else {"content_length": length}
    assert body_length(head("POST", **headers)) == expected


# == answers' bytes ==========================================================================
def test_a_reply_is_one_whole_answer_that_closes_the_connection() -> None:
    reply = Reply(202, b'{"a":1}', headers=(("Allow", "POST"),))
    assert reply.encode() == (
        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 7\r\n"
        b"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n"
        b'Allow: POST\r\n\r\n{"a":1}'
    )
    assert Reply(418, b"").encode().startswith(b"HTTP/1.1 418 Status\r\n")


def test_readyz_says_the_reasons_with_200_or_503() -> None:
    ready = {"ready": True, "phase": "running", "workers": 2, "reasons": [], "pools": {}}
    reply = ready_reply(ready)
    assert reply.status == 200
    assert body_of(reply) == {"ready": True, "phase": "running", "workers": 2, "reasons": []}
    waiting = {**ready, "ready": False, "reasons": ["not listening"]}
    assert ready_reply(waiting).status == 503
    assert body_of(ready_reply(waiting))["reasons"] == ["not listening"]


def test_healthz_rounds_the_uptime() -> None:
    assert body_of(alive_reply(77, 12.345)) == {"status": "alive", "pid": 77, "up_s": 12.3}


# == who may ask =============================================================================
@pytest.mark.parametrize("host", ["127.0.0.1:9090", "localhost", "localhost:1", "[::1]:9", "[::1]"])
def test_without_a_token_a_loopback_host_is_served(host: str) -> None:
    assert refusal(head(host=host), "") is None


@pytest.mark.parametrize("host", ["evil.example", "evil.example:9090", "10.0.0.1:80", None])
def test_without_a_token_another_host_is_refused(host: str | None) -> None:
    # DNS rebinding: a page of evil.example whose name resolves to 127.0.0.1.
    status, why = refused(decide(head(host=host), ""))
    assert status == 403 and "not a loopback name" in why


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_need_neither_a_loopback_host_nor_a_token(path: str) -> None:
    assert refusal(head(target=path, host="evil.example"), "") is None
    assert refusal(head(target=path), TOKEN) is None


def test_a_cross_origin_post_is_refused_and_a_same_origin_one_served() -> None:
    drain = f"/api/backends/{B1}/drain"
    status, why = refused(decide(head("POST", drain, origin="http://evil.example"), ""))
    assert (status, why) == (403, "cross-origin POST refused")
    assert refusal(head("POST", drain, origin=f"http://{LOCAL}"), "") is None
    assert refusal(head("POST", drain), "") is None  # no Origin: not a browser's page
    assert refusal(head("GET", origin="http://evil.example"), "") is None  # reads are GETs


def test_with_a_token_it_is_required_and_the_host_is_not_checked() -> None:
    reply = decide(head(host="admin.example"), TOKEN)
    assert refused(reply)[0] == 401
    assert isinstance(reply, Reply)
    assert ("WWW-Authenticate", 'Bearer realm="wsgate"') in reply.headers
    for wrong in ("Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN):
        assert refused(decide(head(authorization=wrong), TOKEN))[0] == 401, wrong
    for right in (f"Bearer {TOKEN}", f"bearer   {TOKEN} "):
        assert refusal(head(host="admin.example", authorization=right), TOKEN) is None


def test_the_cookie_carries_the_token_for_a_browser() -> None:
    assert refusal(head(cookie=f"theme=dark; {COOKIE}={TOKEN}"), TOKEN) is None
    assert refused(decide(head(cookie=f"{COOKIE}=nope"), TOKEN))[0] == 401
    assert refused(decide(head(cookie=f"other_{COOKIE}={TOKEN}"), TOKEN))[0] == 401


def test_the_query_token_counts_on_the_dashboard_page_only_and_wins_there() -> None:
    assert refusal(head(target=f"/?token={TOKEN}"), TOKEN) is None
    assert refused(decide(head(target=f"/api/state?token={TOKEN}"), TOKEN))[0] == 401
    wrong = head(target="/?token=wrong", authorization=f"Bearer {TOKEN}")
    assert refused(decide(wrong, TOKEN))[0] == 401


def test_with_a_token_a_cross_origin_post_is_still_refused() -> None:
    post = head("POST", f"/api/backends/{B1}/enable", origin="http://evil.example")
    request = head(
        "POST",
        f"/api/backends/{B1}/enable",
        origin="http://evil.example",
        authorization=f"Bearer {TOKEN}",
    )
    assert refused(decide(post, TOKEN))[0] == 401
    assert refused(decide(request, TOKEN)) == (403, "cross-origin POST refused")


# == which page ==============================================================================
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", Asset("dashboard.html", "text/html; charset=utf-8")),
        ("/dashboard.js", Asset("dashboard.js", "text/javascript; charset=utf-8")),
        ("/dashboard.css", Asset("dashboard.css", "text/css; charset=utf-8")),
        ("/api/events", Page.EVENTS),
        ("/api/state?pretty=1", Page.STATE),
        ("/metrics", Page.METRICS),
        ("/healthz", Page.HEALTH),
        ("/readyz", Page.READY),
    ],
)
def test_each_page_is_named_for_get_and_head(path: str, expected: Asset | Page) -> None:
    assert decide(head("GET", path), "") == expected
    assert decide(head("HEAD", path), "") == expected


def test_an_unknown_page_is_404_and_another_method_405() -> None:
    assert refused(decide(head(target="/nothing"), "")) == (404, "no such page: /nothing")
    reply = decide(head("DELETE", "/metrics"), "")
    assert refused(reply) == (405, "GET only")
    assert isinstance(reply, Reply) and reply.headers == (("Allow", "GET, HEAD"),)
    reply = decide(head("GET", f"/api/backends/{B1}/drain"), "")
    assert refused(reply) == (405, "POST only")
    assert isinstance(reply, Reply) and reply.headers == (("Allow", "POST"),)


def test_the_token_in_the_address_becomes_a_cookie() -> None:
    reply = decide(head(target=f"/?token={TOKEN}"), TOKEN)
    assert isinstance(reply, Reply) and reply.status == 303
    assert reply.headers == (
        ("Location", "/"),
        ("Set-Cookie", f"{COOKIE}={TOKEN}; HttpOnly; SameSite=Strict; Path=/"),
    )
    # Without a token configured the query means nothing: the page itself.
    assert decide(head(target="/?token=x"), "") == Asset(
        "dashboard.html", "text/html; charset=utf-8"
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (f"/api/backends/{B1}/drain", BackendPost(B1, True, None)),
        (f"/api/backends/{B1}/drain?over_s=2.5", BackendPost(B1, True, "2.5")),
        (f"/api/backends/{B1}/enable?over_s=9", BackendPost(B1, False, "9")),
        ("/api/backends/host%3A1/drain", BackendPost("host:1", True, None)),
        ("/api/backends/a/b/drain", BackendPost("a/b", True, None)),
        (f"/api/backends/{B1}/drain?over_s=", BackendPost(B1, True, None)),  # blank: default
    ],
)
def test_a_backend_post_is_parsed(target: str, expected: BackendPost) -> None:
    assert decide(head("POST", target), "") == expected


@pytest.mark.parametrize("target", [f"/api/backends/{B1}/reboot", "/api/backends//drain"])
def test_a_backend_post_without_a_name_or_action_is_404(target: str) -> None:
    assert refused(decide(head("POST", target), ""))[0] == 404


# == drain and enable ========================================================================
def test_a_drain_takes_the_default_time_or_the_query_s() -> None:
    assert BackendPost(B1, True, None).resolve({B1}, 30.0) == Drain(B1, True, 30.0)
    assert BackendPost(B1, True, "0").resolve({B1}, 30.0) == Drain(B1, True, 0.0)
    limit = BackendPost(B1, True, repr(MAX_DRAIN_S)).resolve({B1}, 30.0)
    assert limit == Drain(B1, True, MAX_DRAIN_S)
    assert BackendPost(B1, False, None).resolve({B1}, 30.0) == Drain(B1, False, 30.0)


@pytest.mark.parametrize("over_s", ["-1", "nan", "inf", "x", repr(MAX_DRAIN_S + 1)])
def test_a_drain_time_out_of_range_is_400(over_s: str) -> None:
    reply = BackendPost(B1, True, over_s).resolve({B1}, 30.0)
    assert isinstance(reply, Reply) and reply.status == 400
    assert body_of(reply) == {"error": "over_s: 0 to 86400 seconds"}


def test_an_unknown_backend_is_404_before_its_drain_time_is_read() -> None:
    reply = BackendPost("127.0.0.1:1", True, "nan").resolve({B1}, 30.0)
    assert isinstance(reply, Reply) and reply.status == 404
    assert body_of(reply) == {"error": "no backend called '127.0.0.1:1'"}


def test_a_drain_says_its_time_and_an_enable_does_not() -> None:
    drained = Drain(B1, True, 2.0).reply()
    assert drained.status == 202
    assert body_of(drained) == {"backend": B1, "drained": True, "over_s": 2.0}
    assert body_of(Drain(B1, False, 2.0).reply()) == {"backend": B1, "drained": False}


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
