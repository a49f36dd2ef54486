"""The overload answer a browser can read (issue 15): a handshake the gateway turns away
is completed by the gateway itself and closed at once with 1013 and
"retry-after=N; cause=...", never touching a backend; and the gateway serves
wsgate-client.js at server.client_script_path."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.backends import named_backend
from tests.support.gateway import gateway
from tests.support.procs import free_port
from wsgate.protocol.close_reason import parse_close_reason

pytestmark = pytest.mark.e2e

CONFIG = """
[server]
listen = ["127.0.0.1:{{port}}"]
access_log = false
client_script_path = "/wsgate-client.js"
[pools.app]
backends = ["127.0.0.1:{backend}"]
max_handshakes_per_backend = 1
queue_size = 1
queue_timeout_s = 30
[[routes]]
pool = "app"
overload_answer = "auto"
"""


async def attempt(url: str, origin: str | None) -> tuple[str, int | None, str]:
    """One handshake: ("greeted", None, name) from the backend, or ("closed", code,
    reason) when the gateway answered with a close, or ("http", status, "")."""
    headers = {"Origin": origin} if origin else None
    try:
        async with connect(url, additional_headers=headers, open_timeout=30) as ws:
            try:
                name = await asyncio.wait_for(ws.recv(), 30)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None, "the gateway's close frame must arrive"
                return "closed", closed.rcvd.code, closed.rcvd.reason
            return "greeted", None, str(name)
    except Exception as exc:  # InvalidStatus for the HTTP answer
        response = getattr(exc, "response", None)
        if response is None:
            raise
        return "http", response.status_code, ""


def test_browsers_get_a_1013_close_with_the_retry_after_and_others_a_503(
    tmp_path: Path,
) -> None:
    backend = free_port()
    slow = ("--slow-handshake", "1.0", "--slots", "1")
    with (
        named_backend(tmp_path, backend, "B", *slow) as proc,
        gateway(tmp_path, config=CONFIG.format(backend=backend)) as gw,
    ):

        async def storm() -> list[tuple[str, int | None, str]]:
            # One handshake holds the slot and one the queue's place; the rest overflow.
            browsers = [attempt(f"{gw.url}/", "http://app.test") for _ in range(6)]
            others = [attempt(f"{gw.url}/", None) for _ in range(4)]
            return await asyncio.wait_for(asyncio.gather(*browsers, *others), 120)

        outcomes = asyncio.run(storm())
        script = urllib.request.urlopen(f"http://127.0.0.1:{gw.port}/wsgate-client.js", timeout=30)
        body = script.read()
        content_type = script.headers["Content-Type"]
        handshakes_seen = proc.log().count("handshake ")
    browser, other = outcomes[:6], outcomes[6:]
    closes = [o for o in browser if o[0] == "closed"]
    assert closes, browser
    for _, code, reason in closes:
        hint = parse_close_reason(reason)
        assert code == 1013
        assert hint.cause == "overloaded_queue_full"
        # Whole seconds; 0 when the queue's rate puts the turn within the second.
        assert hint.retry_after_s is not None and hint.retry_after_s >= 0
    assert {o[0] for o in browser} <= {"closed", "greeted"}
    assert {(o[0], o[1]) for o in other} <= {("http", 503), ("greeted", None)}
    greeted = sum(1 for o in outcomes if o[0] == "greeted")
    # The backend saw only the handshakes it greeted: a close answer never reaches it.
    assert handshakes_seen == greeted
    assert content_type == "text/javascript; charset=utf-8"
    assert body == (Path(__file__).parents[2] / "src/wsgate/gateway/wsgate-client.js").read_bytes()
