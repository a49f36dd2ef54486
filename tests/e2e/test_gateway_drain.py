"""A paced drain on SIGTERM, measured by the clients: readiness turns false first, new
handshakes get 503 shutting_down during the grace, then every tunnel gets a real close
frame, spread over drain_window_s so that no second holds more than 20 % of the closes;
what is left at drain_timeout_s gets 1001. Real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_gateway_errors import Parsed
from tests.support.admin import request
from tests.support.backends import named_backend
from tests.support.gateway import gateway
from tests.support.procs import free_port, wait_for_port
from tests.support.raw import raw_request, upgrade_request
from tests.support.tunnels import close_all, open_tunnels, per_second, wait_closed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The issue asks for 1,000 tunnels; this 2-core machine opens them in about 10 s.
TUNNELS = 1000
WINDOW_S = 10.0
GRACE_S = 2.0


def records(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def config(backend_port: int, admin_port: int, **server: object) -> str:
    extra = "\n".join(f"{key} = {value}" for key, value in server.items())
    return f"""
[server]
listen = ["127.0.0.1:{{port}}"]
access_log = false
{extra}
[pools.app]
backends = ["127.0.0.1:{backend_port}"]
queue_timeout_s = 120
[pools.app.health]
kind = "none"
[admin]
listen = "127.0.0.1:{admin_port}"
metrics = false
"""


def test_sigterm_closes_1000_tunnels_spread_over_the_window(tmp_path: Path) -> None:
    # Before: every tunnel was closed with 1001 in the same instant at drain_timeout_s,
    # so every client came back in the same second.
    backend_port, admin_port = free_port(), free_port()
    text = config(
        backend_port,
        admin_port,
        drain_timeout_s=40,
        drain_grace_s=GRACE_S,
        drain_window_s=WINDOW_S,
        drain_close_code=1012,
    )
    with (
        named_backend(tmp_path, backend_port, "A"),
        gateway(tmp_path, config=text) as gw,
    ):
        wait_for_port(admin_port)  # opened after the traffic port the fixture waits for

        async def main() -> tuple[float, list[tuple[float, int | None]], dict[str, Any]]:
            tunnels = await open_tunnels(f"{gw.url}/", TUNNELS)
            checks: dict[str, Any] = {}
            try:
                assert request(admin_port, "GET", "/readyz")[0] == 200
                sigterm = time.monotonic()
                gw.proc.popen.send_signal(signal.SIGTERM)
                # During the grace: not ready, and a new handshake gets 503 at once.
                checks["readyz"] = await asyncio.to_thread(request, admin_port, "GET", "/readyz")
                checks["new"] = await asyncio.to_thread(raw_request, gw.port, upgrade_request())
                checks["before_first_close"] = time.monotonic() - sigterm
                checks["closed_in_grace"] = sum(t.closed_at is not None for t in tunnels)
                await wait_closed(tunnels, timeout_s=60)
            finally:
                await close_all(tunnels)
            closes = [(t.closed_at or 0.0, t.code) for t in tunnels]
            return sigterm, closes, checks

        sigterm, closes, checks = asyncio.run(main())
        assert gw.proc.popen.wait(timeout=60) == 0
        log = gw.proc.log()

    status, _, body = checks["readyz"]
    assert status == 503 and json.loads(body)["phase"] == "draining", body
    answer = Parsed(checks["new"])
    assert answer.status == 503 and answer.headers["x-wsgate-cause"] == "shutting_down"
    assert int(answer.headers["retry-after"]) >= 1
    assert checks["before_first_close"] < GRACE_S and checks["closed_in_grace"] == 0

    # Every client got a close frame with 1012 (a restart is expected), none a reset.
    assert [code for _, code in closes] == [1012] * TUNNELS
    times = sorted(at for at, _ in closes)
    first, last = times[0] - sigterm, times[-1] - sigterm
    assert GRACE_S - 0.1 <= first < GRACE_S + 1.0, first
    assert WINDOW_S - 1.5 < last - GRACE_S < WINDOW_S + 1.5, last
    counts = per_second(times, sigterm + GRACE_S)
    report = {second: counts[second] for second in sorted(counts)}
    print(f"closes per second after the grace: {report}")
    assert max(counts.values()) <= TUNNELS * 0.20, report
    # And far better than that: about a tenth each.
    assert max(counts.values()) <= TUNNELS * 0.15, report

    found = records(log)
    draining = next(r for r in found if r["event"] == "draining")
    assert draining["tunnels"] == TUNNELS and draining["grace_s"] == GRACE_S
    closing = next(r for r in found if r["event"] == "drain_closing")
    assert closing["tunnels"] == TUNNELS and closing["close_code"] == 1012
    assert any(r["event"] == "stopped" for r in found)


def test_a_rate_too_slow_for_the_timeout_leaves_the_rest_to_1001(tmp_path: Path) -> None:
    # 60 tunnels at 20 a second need 3 s; the drain has 1.5 s after its grace: about 30
    # get 1012 at the pace, the rest 1001 at drain_timeout_s.
    backend_port, admin_port = free_port(), free_port()
    text = config(
        backend_port,
        admin_port,
        drain_timeout_s=2.0,
        drain_grace_s=0.5,
        drain_rate_per_s=20,
        drain_close_code=1012,
    )
    with (
        named_backend(tmp_path, backend_port, "A"),
        gateway(tmp_path, config=text) as gw,
    ):

        async def main() -> tuple[float, list[tuple[float, int | None]]]:
            tunnels = await open_tunnels(f"{gw.url}/", 60)
            try:
                sigterm = time.monotonic()
                gw.proc.popen.send_signal(signal.SIGTERM)
                await wait_closed(tunnels, timeout_s=30)
            finally:
                await close_all(tunnels)
            return sigterm, [(t.closed_at or 0.0, t.code) for t in tunnels]

        sigterm, closes = asyncio.run(main())
        assert gw.proc.popen.wait(timeout=30) == 0

    paced = sorted(at - sigterm for at, code in closes if code == 1012)
    rest = sorted(at - sigterm for at, code in closes if code == 1001)
    assert len(paced) + len(rest) == 60
    assert 20 <= len(paced) <= 35, (len(paced), len(rest))
    assert paced[0] >= 0.4 and paced[-1] <= 2.2
    assert rest and all(1.9 <= at <= 3.5 for at in rest), rest
