"""wsgate-client.js in real headless Chromium (Debian's, driven through Playwright's
Python API): its pure policy evaluated in the page against the Python modules it mirrors,
its send queue, and 50 clients on one page against an overloaded server that completes
the handshake and closes at once with 1013 and `retry-after=N; cause=...`: every client
reads the reason, waits at least as told, and connects."""

from __future__ import annotations

import random
import shutil
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
from tests.support.procs import free_port
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
START_CLIENTS = """({url, count, options}) => {
  window.startedAt = performance.now();
  window.logs = [];
  window.clients = [];
  for (let i = 0; i < count; i++) {
    const log = [];
    const client = new wsgate.WsgateClient(url, options);
    for (const type of ["open", "close", "retry", "giveup"]) {
      client.addEventListener(type, (event) =>
        log.push({ type, t: performance.now(), ...event.detail }));
    }
    client.addEventListener("message", (event) =>
      log.push({ type: "message", t: performance.now(), data: String(event.data) }));
    window.logs.push(log);
    window.clients.push(client);
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
            await conn.wait_closed()
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


SEEDED_RANDOM = """(draws) => { let i = 0; return () => draws[i++]; }"""


def test_backoff_windows_double_to_the_cap_with_full_jitter(harness: Any) -> None:
    draws = [random.Random(15).random() for _ in range(12)]
    delays = harness.evaluate(
        f"""(draws) => {{
          const random = ({SEEDED_RANDOM})(draws);
          const policy = {{ ...wsgate.DEFAULT_POLICY, baseDelayMs: 500, maxDelayMs: 8000 }};
          return draws.map((_, i) =>
            wsgate.decideAfterClose({{ code: 1006, reason: "" }}, i + 1, policy, random));
        }}""",
        draws,
    )
    windows = [min(8000, 500 * 2**i) for i in range(12)]
    assert windows[:6] == [500, 1000, 2000, 4000, 8000, 8000]
    for decision, draw, window in zip(delays, draws, windows, strict=True):
        assert decision["retry"] is True
        assert decision["retryAfterS"] is None
        assert decision["delayMs"] == pytest.approx(draw * window)
    # The extremes of the draw: nothing at all and (almost) the whole window.
    edges = harness.evaluate(
        """() => [0, 0.999999].map((u) => wsgate.decideAfterClose(
             { code: 1006, reason: "" }, 40, wsgate.DEFAULT_POLICY, () => u).delayMs)"""
    )
    assert edges[0] == 0
    assert 29_999 < edges[1] < 30_000


def decide(page: Any, code: int, reason: str, attempt: int = 1, **policy: Any) -> Any:
    return page.evaluate(
        """([code, reason, attempt, policy]) => wsgate.decideAfterClose(
             { code, reason }, attempt, { ...wsgate.DEFAULT_POLICY, ...policy }, () => 0.5)""",
        [code, reason, attempt, policy],
    )


def test_close_codes_and_hints_decide_the_retry(harness: Any) -> None:
    told = decide(harness, 1013, "retry-after=2; cause=overloaded_queue_full")
    # Told 2 s: 2 s plus half of the first 500 ms window (the draw is 0.5).
    assert told == {
        "retry": True,
        "delayMs": 2250,
        "retryAfterS": 2,
        "cause": "overloaded_queue_full",
    }
    for code in (1001, 1012):
        assert decide(harness, code, "retry-after=5")["delayMs"] == 5250
    # A hint-less overload and a refused handshake (1006): back-off only.
    assert decide(harness, 1013, "cause=overloaded_queue_full")["delayMs"] == 250
    assert decide(harness, 1006, "", attempt=3)["delayMs"] == 1000
    # A retry-after on a code that does not ask to come back later is no hint.
    assert decide(harness, 1011, "retry-after=60")["delayMs"] == 250

    # 1008 gives up unless told when to come back (a rate limit).
    assert decide(harness, 1008, "cause=forbidden_origin") == {
        "retry": False,
        "why": "close code 1008",
        "retryAfterS": None,
        "cause": "forbidden_origin",
    }
    assert decide(harness, 1008, "retry-after=30; cause=rate_limited")["delayMs"] == 30250
    # Configured codes give up; maxAttempts in a row gives up.
    assert decide(harness, 4401, "", giveUpCodes=[4401])["retry"] is False
    assert decide(harness, 1008, "", giveUpCodes=[])["retry"] is True
    assert decide(harness, 1006, "", attempt=3, maxAttempts=3)["why"] == "3 attempts"


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


def connected_times(logs: list[list[dict[str, Any]]]) -> list[float]:
    """When each client's welcomed connection opened (page ms)."""
    times = []
    for log in logs:
        welcome = next(i for i, e in enumerate(log) if e["type"] == "message")
        opened = max(i for i, e in enumerate(log[:welcome]) if e["type"] == "open")
        times.append(log[opened]["t"])
    return times


def check_waited_as_told(logs: list[list[dict[str, Any]]], cause: str) -> list[float]:
    """Every close with a retry-after was followed by a retry planned at least that
    long, and the next socket opened no sooner; the planned first retries of the
    clients, page ms."""
    first_retries = []
    for log in logs:
        assert not [e for e in log if e["type"] == "giveup"], log
        told = [i for i, e in enumerate(log) if e["type"] == "close" and e["code"] == 1013]
        assert told, f"this client was never told to wait: {log}"
        for i in told:
            close, retry = log[i], log[i + 1]
            assert close["cause"] == cause
            wait_ms = close["retryAfterS"] * 1000
            assert wait_ms >= 1000
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
            START_CLIENTS, {"url": f"ws://127.0.0.1:{port}/", "count": CLIENTS, "options": options}
        )
        page.wait_for_function(ALL_WELCOMED, timeout=ALL_CONNECTED_WITHIN_S * 1000, polling=100)
        elapsed_s = time.monotonic() - started
        logs = page.evaluate("window.logs")
        started_ms = page.evaluate("window.startedAt")
        page.evaluate("window.clients.forEach((client) => client.close())")
        page.close()
    assert not problems, problems
    assert elapsed_s < ALL_CONNECTED_WITHIN_S
    assert server.refused == refuse
    assert server.welcomed == CLIENTS
    # One attempt for each refusal and one that stayed: nobody retried unasked.
    assert server.handshakes == CLIENTS + refuse
    first_retries = check_waited_as_told(logs, "overloaded_queue_full")
    # Told the same second, the first retries spread over the jitter window.
    assert max(first_retries) - min(first_retries) > 150
    connected = connected_times(logs)
    assert min(connected) - started_ms >= 1000  # nobody before the first retry-after
