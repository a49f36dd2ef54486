"""wsgate-client.js in real headless Chromium (Debian's, driven through Playwright's
Python API): its pure policy evaluated in the page against the Python modules it mirrors,
its send queue, and 50 clients on one page against an overloaded server that completes
the handshake and closes at once with 1013 and `retry-after=N; cause=...`: every client
reads the reason, waits at least as told, and connects."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.backends import ws_server
from tests.support.gateway import gateway
from tests.support.procs import free_port, running
from wsgate.policy.backoff import Backoff, BackoffConfig, Closed, Retry
from wsgate.protocol.close_reason import parse_close_reason

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLIENT_SCRIPT = resources.files("wsgate.gateway").joinpath("wsgate-client.js").read_bytes()
HARNESS = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wsgate-client harness</title></head>
<body><script type="module">
import * as wsgate from "/wsgate-client.js";
window.wsgate = wsgate;
</script></body></html>
"""
WELCOME = "welcome"
CLIENTS = 50
# Generous for a slow shared machine: the ideal is about two retry-afters.
ALL_CONNECTED_WITHIN_S = 60.0

# The page's 50 clients; each keeps a log of its events with page times in ms.
START_CLIENTS = """({urls, count, options}) => {
  window.startedAt = performance.now();
  window.logs = [];
  window.clients = [];
  for (let i = 0; i < count; i++) {
    const log = [];
    const client = new wsgate.WsgateClient(urls[i % urls.length], options);
    for (const type of ["open", "close", "retry", "giveup"]) {
      client.addEventListener(type, (event) =>
        log.push({ type, t: performance.now(), ...event.detail }));
    }
    client.addEventListener("message", (event) =>
      log.push({ type: "message", t: performance.now(), data: String(event.data) }));
    window.logs.push(log);
    window.clients.push(client);
    client.send(`hello ${i}`);  // queued until the connection that stays
  }
}"""
ALL_WELCOMED = "() => window.logs.every((log) => log.some((e) => e.type === 'message'))"


def file_response(body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(200, "OK", headers, body)


@dataclass
class OverloadedServer:
    """A stand-in for an overloaded gateway: serves the harness page and the client
    script for plain GETs, completes every WebSocket handshake, closes the first
    `refuse_first` connections at once with 1013 and a retry-after reason, and welcomes
    the rest and holds them open."""

    refuse_first: int
    reason: str
    handshakes: int = 0
    refused: int = 0
    welcomed: int = 0
    paths: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            self.handshakes += 1
            return None
        self.paths.append(request.path)
        if request.path == "/wsgate-client.js":
            return file_response(CLIENT_SCRIPT, "text/javascript; charset=utf-8")
        return file_response(HARNESS, "text/html; charset=utf-8")

    async def handler(self, conn: ServerConnection) -> None:
        if self.refused < self.refuse_first:
            self.refused += 1
            await conn.close(1013, self.reason)
            return
        self.welcomed += 1
        try:
            await conn.send(WELCOME)
            async for message in conn:
                self.received.append(str(message))
        except ConnectionClosed:
            pass


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def open_harness(browser: Any, url: str) -> tuple[Any, list[str]]:
    """A page with the module loaded as `window.wsgate`, and the list its errors go to."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(url)
    page.wait_for_function("window.wsgate !== undefined", timeout=20_000)
    return page, problems


@pytest.fixture
def harness(browser: Any) -> Iterator[Any]:
    """A page on a server that only serves the harness and the script."""
    server = OverloadedServer(refuse_first=0, reason="")
    with ws_server(server.handler, process_request=server.process_request) as port:
        page, problems = open_harness(browser, f"http://127.0.0.1:{port}/harness.html")
        yield page
        page.close()
    assert not problems, problems


REASONS = [
    "retry-after=12; cause=overloaded_queue_full",
    "cause=shutting_down",
    "retry-after=3",
    "RETRY-AFTER = 7 ;  Cause = rate_limited ",
    "retry-after=1; retry-after=9",
    "retry-after=-1; cause=x",
    "retry-after=1.5",
    "retry-after=\u0661\u0662",  # Arabic-Indic digits are not HTTP's delta-seconds
    "retry-after=999999999",
    "retry-after=; cause=",
    "going away",
    "",
    "a=b; c; cause=odd value; retry-after=4",
]


def test_the_page_reads_close_reasons_as_close_reason_py_does(harness: Any) -> None:
    found = harness.evaluate("(reasons) => reasons.map((r) => wsgate.parseCloseReason(r))", REASONS)
    expected = []
    for text in REASONS:
        hint = parse_close_reason(text)
        expected.append({"retryAfterS": hint.retry_after_s, "cause": hint.cause})
    assert found == expected
    assert found[0] == {"retryAfterS": 12, "cause": "overloaded_queue_full"}


class ScriptedRandom(random.Random):
    """A random.Random whose draws are a given list: backoff.py and the page then draw
    the same numbers, so their delays must agree to the float."""

    def __init__(self, draws: list[float]) -> None:
        super().__init__(0)
        self.draws = iter(draws)

    def random(self) -> float:
        return next(self.draws)


# A crowd's worth of failures: refused handshakes (1006) that widen the window to the
# cap, hints small and large (and beyond max_hint_s), a hint on a code that carries one
# by accident, a hint-less overload, and at last a hint-less 1008.
CLOSES = [
    *[(1006, "")] * 7,
    (1013, "retry-after=1; cause=overloaded_queue_full"),
    (1013, "retry-after=12; cause=overloaded_queue_full"),
    (1012, "retry-after=3; cause=shutting_down"),
    (1001, "retry-after=400"),
    (1011, "retry-after=2"),
    (1013, "cause=overloaded_queue_full"),
    (1008, "retry-after=30; cause=client_rate_limited"),
    (1000, ""),
    (1008, "cause=forbidden_origin"),
]
# Knobs away from the defaults, so that each must reach the right place.
PYTHON_CONFIG = {"base_s": 0.2, "cap_s": 5.0, "multiplier": 3.0, "hint_spread_ratio": 0.25}
PAGE_POLICY = {"baseDelayMs": 200, "maxDelayMs": 5000, "multiplier": 3, "hintSpreadRatio": 0.25}


def python_delays(draws: list[float], **config: Any) -> list[float | None]:
    backoff = Backoff(BackoffConfig(**config), ScriptedRandom(draws))
    delays: list[float | None] = []
    for i, (code, reason) in enumerate(CLOSES):
        decision = backoff.failed(Closed(code, reason), now=float(i))
        delays.append(decision.delay_s * 1000 if isinstance(decision, Retry) else None)
    return delays


def page_delays(page: Any, draws: list[float], policy: dict[str, Any]) -> list[float | None]:
    found: list[float | None] = page.evaluate(
        """([draws, closes, options]) => {
          let i = 0;
          const random = () => draws[i++];
          const policy = { ...wsgate.DEFAULT_POLICY, ...options };
          return closes.map(([code, reason], n) => {
            const decision = wsgate.decideAfterClose({ code, reason }, n + 1, policy, random);
            return decision.retry ? decision.delayMs : null;
          });
        }""",
        [draws, CLOSES, policy],
    )
    return found


def test_the_page_draws_the_delays_backoff_py_draws(harness: Any) -> None:
    seeded = random.Random(15)
    draws = [seeded.random() for _ in CLOSES]
    for config, policy in [({}, {}), (PYTHON_CONFIG, PAGE_POLICY)]:
        expected = python_delays(draws, **config)
        found = page_delays(harness, draws, policy)
        assert found == pytest.approx(expected), (config, found, expected)
        assert expected[-1] is None  # the hint-less 1008 gives up
        assert None not in expected[:-1]
    # The windows double up to the cap: with draws of 1 the delays are the windows.
    assert page_delays(harness, [1.0] * len(CLOSES), {})[:7] == [
        500,
        1000,
        2000,
        4000,
        8000,
        16000,
        30000,
    ]


def decide(page: Any, code: int, reason: str, attempt: int = 1, **policy: Any) -> Any:
    return page.evaluate(
        """([code, reason, attempt, policy]) => wsgate.decideAfterClose(
             { code, reason }, attempt, { ...wsgate.DEFAULT_POLICY, ...policy }, () => 0.5)""",
        [code, reason, attempt, policy],
    )


def test_close_codes_and_hints_decide_the_retry(harness: Any) -> None:
    told = decide(harness, 1013, "retry-after=2; cause=overloaded_queue_full")
    # Told 2 s: 2 s plus half of the spread (the draw is 0.5), which is at least 1 s.
    assert told == {
        "retry": True,
        "delayMs": 2500,
        "retryAfterS": 2,
        "cause": "overloaded_queue_full",
    }
    # Told 10 s: the spread is half the hint; told 400 s: believed up to 300 s.
    assert decide(harness, 1012, "retry-after=10")["delayMs"] == 12500
    # ...unless the reason has a cause: wsgate spreads its hints itself, so 1 s only.
    assert decide(harness, 1012, "retry-after=10; cause=shutting_down")["delayMs"] == 10500
    assert decide(harness, 1001, "retry-after=400")["delayMs"] == 315_000
    assert decide(harness, 1013, "retry-after=10", honourHints=False)["delayMs"] == 250
    # A hint-less overload and a refused handshake (1006): back-off only.
    assert decide(harness, 1013, "cause=overloaded_queue_full")["delayMs"] == 250
    assert decide(harness, 1006, "", attempt=3)["delayMs"] == 1000

    # 1008 gives up unless told when to come back (a rate limit).
    gave_up = decide(harness, 1008, "cause=forbidden_origin")
    assert gave_up["retry"] is False
    assert gave_up["why"].startswith("the server closed with 1008")
    assert gave_up["cause"] == "forbidden_origin"
    assert decide(harness, 1008, "retry-after=30; cause=rate_limited")["delayMs"] == 30_500
    # Configured codes give up; maxAttempts failures in a row give up.
    assert decide(harness, 4401, "", giveUpCodes=[4401])["retry"] is False
    assert decide(harness, 1008, "", giveUpCodes=[])["retry"] is True
    assert decide(harness, 1006, "", attempt=3, maxAttempts=3)["why"].startswith("3 attempts")


def test_send_queues_while_disconnected_up_to_the_bound(harness: Any) -> None:
    nobody = free_port()
    found = harness.evaluate(
        """(url) => {
          const client = new wsgate.WsgateClient(url, { queueLimit: 2, maxAttempts: 1 });
          const outcome = [];
          for (const message of ["a", "b", "c"]) {
            try { client.send(message); outcome.push("queued"); }
            catch (error) { outcome.push(error.name); }
          }
          outcome.push(client.queued, client.state);
          client.close();
          try { client.send("d"); } catch (error) { outcome.push(error.name); }
          outcome.push(client.state);
          return outcome;
        }""",
        f"ws://127.0.0.1:{nobody}/",
    )
    assert found == [
        "queued",
        "queued",
        "WsgateQueueFullError",
        2,
        "connecting",
        "WsgateQueueFullError",
        "closed",
    ]


def test_a_url_websocket_refuses_throws_at_once(harness: Any) -> None:
    found = harness.evaluate(
        """(urls) => urls.map((url) => {
          try { new wsgate.WsgateClient(url).close(); return "made"; }
          catch (error) { return error.name; }
        })""",
        ["ws://127.0.0.1:99999/", "ws://127.0.0.1:1/#fragment", "ftp://127.0.0.1/"],
    )
    assert found == ["TypeError", "SyntaxError", "SyntaxError"]


def test_nothing_lost_in_the_queue_once_connected(harness: Any) -> None:
    """Messages sent before the socket opens go out in order once it does."""
    with ws_server() as echo_port:  # echoes every message
        echoed = harness.evaluate(
            """(url) => new Promise((resolve, reject) => {
              const client = new wsgate.WsgateClient(url);
              const seen = [];
              client.addEventListener("message", (event) => {
                seen.push(event.data);
                if (seen.length === 3) { client.close(); resolve(seen); }
              });
              client.addEventListener("giveup", (event) => reject(event.detail.why));
              for (const message of ["one", "two", "three"]) client.send(message);
              setTimeout(() => reject("no echo within 20 s: " + seen), 20000);
            })""",
            f"ws://127.0.0.1:{echo_port}/",
        )
    assert echoed == ["one", "two", "three"]


def wait_for_hellos(server: OverloadedServer, timeout_s: float = 20.0) -> None:
    """The server reads each client's queued hello a moment after the client sent it."""
    deadline = time.monotonic() + timeout_s
    while len(server.received) < CLIENTS and time.monotonic() < deadline:
        time.sleep(0.05)


def check_one_open_each_and_nothing_lost(
    logs: list[list[dict[str, Any]]], server: OverloadedServer
) -> None:
    """A socket closed at once is a failed attempt, not an "open"; the message each
    client queued before it was connected arrived once."""
    for log in logs:
        assert [e["type"] for e in log].count("open") == 1, log
    assert sorted(server.received) == sorted(f"hello {i}" for i in range(CLIENTS))


def connected_times(logs: list[list[dict[str, Any]]]) -> list[float]:
    """When each client's welcomed connection opened (page ms)."""
    times = []
    for log in logs:
        welcome = next(i for i, e in enumerate(log) if e["type"] == "message")
        opened = max(i for i, e in enumerate(log[:welcome]) if e["type"] == "open")
        times.append(log[opened]["t"])
    return times


def check_waited_as_told(
    logs: list[list[dict[str, Any]]], cause: str, *, all_told: bool = True
) -> list[float]:
    """Every close with a retry-after was followed by a retry planned at least that
    long, and the next socket opened no sooner; the planned first retries of the
    clients that were told to wait, page ms."""
    first_retries = []
    for log in logs:
        assert not [e for e in log if e["type"] == "giveup"], log
        told = [i for i, e in enumerate(log) if e["type"] == "close" and e["code"] == 1013]
        if not told:
            assert not all_told, f"this client was never told to wait: {log}"
            continue
        for i in told:
            close, retry = log[i], log[i + 1]
            assert close["cause"] == cause
            # A hint was read: retry-after=N, whole seconds; 0 (come back now) is the
            # gateway's word for a turn within the second.
            assert isinstance(close["retryAfterS"], int) and close["retryAfterS"] >= 0
            wait_ms = close["retryAfterS"] * 1000
            assert retry["type"] == "retry"
            assert retry["retryAfterS"] == close["retryAfterS"]
            assert wait_ms <= retry["delayMs"] <= wait_ms + 30_000
            reopened = next(e for e in log[i + 1 :] if e["type"] == "open")
            # performance.now() is coarsened a little; setTimeout never fires early.
            assert reopened["t"] - close["t"] >= wait_ms - 1, (close, reopened)
        first_retries.append(log[told[0]]["t"] + log[told[0] + 1]["delayMs"])
    return first_retries


def test_fifty_clients_read_1013_wait_as_told_and_all_connect(browser: Any) -> None:
    """Against a stand-in that refuses 75 handshakes: every client's first attempt and
    25 of the retries. The gateway itself is tested the same way below."""
    refuse = CLIENTS + CLIENTS // 2
    server = OverloadedServer(refuse, "retry-after=1; cause=overloaded_queue_full")
    with ws_server(server.handler, process_request=server.process_request) as port:
        page, problems = open_harness(browser, f"http://127.0.0.1:{port}/harness.html")
        options = {"baseDelayMs": 500, "maxDelayMs": 4000}
        started = time.monotonic()
        page.evaluate(
            START_CLIENTS,
            {"urls": [f"ws://127.0.0.1:{port}/"], "count": CLIENTS, "options": options},
        )
        page.wait_for_function(ALL_WELCOMED, timeout=ALL_CONNECTED_WITHIN_S * 1000, polling=100)
        elapsed_s = time.monotonic() - started
        logs = page.evaluate("window.logs")
        started_ms = page.evaluate("window.startedAt")
        wait_for_hellos(server)
        page.evaluate("window.clients.forEach((client) => client.close())")
        page.close()
    assert not problems, problems
    assert elapsed_s < ALL_CONNECTED_WITHIN_S
    assert server.refused == refuse
    assert server.welcomed == CLIENTS
    # One attempt for each refusal and one that stayed: nobody retried unasked.
    assert server.handshakes == CLIENTS + refuse
    check_one_open_each_and_nothing_lost(logs, server)
    first_retries = check_waited_as_told(logs, "overloaded_queue_full")
    # Told the same second, the first retries spread over the jitter window.
    assert max(first_retries) - min(first_retries) > 150
    connected = connected_times(logs)
    assert min(connected) - started_ms >= 1000  # nobody before the first retry-after


GATEWAY_CONFIG = """
[server]
listen = ["127.0.0.1:{{port}}", {more_listeners}]
access_log = false
client_script_path = "/wsgate-client.js"
[pools.app]
backends = ["127.0.0.1:{backend}"]
max_handshakes_per_backend = {slots}
queue_size = 1
queue_timeout_s = 30
[[routes]]
pool = "app"
overload_answer = "close"
"""
BACKEND_SLOTS = 1
LISTENERS = CLIENTS
BACKEND_HANDSHAKE_S = 0.25
# The ideal is 50 / 4 = 12.5 s, about 20 s seen on a loaded 2-core machine; generous.
GATEWAY_ALL_CONNECTED_WITHIN_S = 120.0


def distinct_free_ports(count: int) -> list[int]:
    """`count` different ports nothing listens on: all bound at once, so the kernel cannot
    hand out one twice (free_port() called in a row can)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


@dataclass
class SlowBackend(OverloadedServer):
    """A backend that cannot keep up: at most BACKEND_SLOTS handshakes at once, each
    BACKEND_HANDSHAKE_S long; it serves the harness page, and counts the handshakes it
    is in at once (the gateway must keep that within max_handshakes_per_backend)."""

    in_handshake: int = 0
    most_in_handshake: int = 0
    slots: asyncio.Semaphore | None = None

    async def slow_process_request(
        self, conn: ServerConnection, request: Request
    ) -> Response | None:
        answer = self.process_request(conn, request)
        if answer is not None:
            return answer
        self.slots = self.slots or asyncio.Semaphore(BACKEND_SLOTS)
        self.in_handshake += 1
        self.most_in_handshake = max(self.most_in_handshake, self.in_handshake)
        try:
            async with self.slots:
                await asyncio.sleep(BACKEND_HANDSHAKE_S)
        finally:
            self.in_handshake -= 1
        return None


def test_fifty_clients_through_an_overloaded_gateway_wait_as_told_and_all_connect(
    tmp_path: Path, browser: Any
) -> None:
    """A real `wsgate serve` whose backend completes 4 handshakes a second, with room
    for 1 in flight and 1 queued: 50 clients at once overflow it, the gateway closes the
    overflow with 1013 and a retry-after, and the page's clients come back as told.
    The page comes from the backend through the gateway, the script from the gateway.

    Chromium lets one WebSocket handshake per address and port be in progress at a time
    (RFC 6455 section 4.1, item 2) and only about ten in all; 50 browsers would not wait
    for each other, so the gateway listens on one port per client."""
    backend = SlowBackend(refuse_first=0, reason="")
    with ws_server(backend.handler, process_request=backend.slow_process_request) as port:
        gateway_port, *more_ports = distinct_free_ports(LISTENERS)
        more_listeners = ", ".join(f'"127.0.0.1:{p}"' for p in more_ports)
        config = GATEWAY_CONFIG.format(
            backend=port, slots=BACKEND_SLOTS, more_listeners=more_listeners
        )
        with gateway(tmp_path, config=config, port=gateway_port) as gw:
            page, problems = open_harness(browser, f"http://127.0.0.1:{gw.port}/harness.html")
            urls = [f"ws://127.0.0.1:{p}/socket" for p in [gw.port, *more_ports]]
            started = time.monotonic()
            page.evaluate(START_CLIENTS, {"urls": urls, "count": CLIENTS, "options": {}})
            page.wait_for_function(
                ALL_WELCOMED, timeout=GATEWAY_ALL_CONNECTED_WITHIN_S * 1000, polling=100
            )
            elapsed_s = time.monotonic() - started
            logs = page.evaluate("window.logs")
            started_ms = page.evaluate("window.startedAt")
            wait_for_hellos(backend)
            page.evaluate("window.clients.forEach((client) => client.close())")
            page.close()
            overloads = [line for line in gw.log_lines() if "overloaded_queue_full" in line]
    assert not problems, problems
    assert elapsed_s < GATEWAY_ALL_CONNECTED_WITHIN_S
    # The script came from the gateway, never from the backend.
    assert "/harness.html" in backend.paths
    assert "/wsgate-client.js" not in backend.paths
    assert backend.welcomed == CLIENTS
    # Only the handshakes it welcomed reached the backend, never more at once than allowed.
    assert backend.handshakes == CLIENTS
    assert backend.most_in_handshake <= BACKEND_SLOTS
    check_one_open_each_and_nothing_lost(logs, backend)
    first_retries = check_waited_as_told(logs, "overloaded_queue_full", all_told=False)
    told = len(first_retries)
    # Most were told to wait (33 of 50 in runs here), the rest got the slot or the
    # queue's place when they came; the gateway logged each close answer.
    assert told >= CLIENTS // 2, told
    assert len(overloads) >= told
    # Told at about the same moment, their first retries spread out.
    assert max(first_retries) - min(first_retries) > 150
    # The overflow connected no sooner than the retry-after it was first told.
    for log, connected_ms in zip(logs, connected_times(logs), strict=True):
        first_told = next((e for e in log if e["type"] == "close"), None)
        if first_told is not None:
            assert connected_ms - started_ms >= first_told["retryAfterS"] * 1000


def test_the_demo_chat_page_connects_with_the_client_from_the_gateway(
    tmp_path: Path, browser: Any
) -> None:
    """`wsgate demo`'s chat page, as a user opens it: the page from the chat backend,
    wsgate-client.js from the gateway's client_script_path; it connects, and a message
    typed before and after it did comes back through the chat."""
    port, admin = free_port(), free_port()
    argv = [sys.executable, "-m", "wsgate", "demo", "--port", str(port), "--admin-port", str(admin)]
    with running(argv, tmp_path / "demo.log", port):
        page = browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(f"http://127.0.0.1:{port}/")
        page.fill("#text", "typed at once")
        page.click("form button")
        page.wait_for_function(
            "document.getElementById('state').dataset.state === 'open'", timeout=20_000
        )
        page.fill("#text", "hello through wsgate")
        page.click("form button")
        page.wait_for_function(
            """() => {
              const lines = [...document.querySelectorAll('#log p')].map((p) => p.textContent);
              return lines.includes('typed at once') && lines.includes('hello through wsgate');
            }""",
            timeout=20_000,
        )
        lines = page.eval_on_selector_all("#log p", "(ps) => ps.map((p) => p.textContent)")
        page.close()
    assert not problems, problems
    assert lines[0].startswith("* someone joined")
    assert lines.index("typed at once") < lines.index("hello through wsgate")
