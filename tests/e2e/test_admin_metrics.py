"""/metrics after real traffic, with one worker and with two: 101s, queued handshakes,
503s, a killed backend. Every counter, gauge and histogram that traffic moves is checked
through prometheus_client's own parser, and /readyz and /api/state with them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.admin import get_json, request, scrape, serve, value, wait_until
from tests.support.backends import named_backend
from tests.support.procs import free_port

pytestmark = pytest.mark.e2e

CONFIG = """
[server]
listen = ["127.0.0.1:{port}"]
access_log = false

[admin]
listen = "127.0.0.1:ADMIN"

[pools.app]
backends = ["127.0.0.1:APP"]
eject_after_failures = 1
retries = 0
health = { kind = "none" }

[pools.slow]
backends = ["127.0.0.1:SLOW"]
max_handshakes_per_backend = 1
queue_size = 1
queue_timeout_s = 20
health = { kind = "none" }

[[routes]]
path_prefix = "/slow"
pool = "slow"

[[routes]]
path_prefix = "/"
pool = "app"
"""

SLOW_HANDSHAKE_S = 1.5
STORM = 6  # per worker: one slot and one place in line, so at least 2 of 6 get 503


def config(admin: int, app: int, slow: int) -> str:
    return CONFIG.replace("ADMIN", str(admin)).replace("APP", str(app)).replace("SLOW", str(slow))


def handshake(url: str) -> int:
    """101 (the tunnel greeted and echoed), or the status the gateway refused with."""
    try:
        with connect(url, open_timeout=30) as ws:
            ws.recv(timeout=20)
            ws.send("x")
            assert ws.recv(timeout=20) == "x"
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def names_and_help(families: list[Any]) -> None:
    """Prometheus naming: the wsgate_ prefix, units and _total in the names, HELP text."""
    for family in families:
        assert family.name.startswith("wsgate_"), family.name
        assert family.documentation, f"{family.name} has no HELP"
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_move_with_traffic(tmp_path: Path, workers: int) -> None:
    admin, app, slow = free_port(), free_port(), free_port()
    slow_args = ("--slow-handshake", str(SLOW_HANDSHAKE_S), "--slots", "4")
    with (
        named_backend(tmp_path, app, "app") as app_backend,
        named_backend(tmp_path, slow, "slow", *slow_args),
        serve(tmp_path, config(admin, app, slow), workers=workers) as gw,
    ):
        status, health = wait_until(lambda: _up(admin))
        assert health["status"] == "alive"
        names_and_help(scrape(admin))

        # -- 101s: three tunnels come and go, one stays open ----------------------------
        for _ in range(3):
            assert handshake(f"{gw.url}/chat") == 101
        held = connect(f"{gw.url}/held", open_timeout=30, legacy=True)
        assert held.recv(timeout=20) == "app"
        m = wait_until(lambda: _when(admin, lambda m: value(m, "wsgate_tunnel_bytes_total") > 0))
        assert value(m, "wsgate_upgrades_total", pool="app") == 4
        assert value(m, "wsgate_handshakes_total", pool="app", outcome="ok") == 4
        assert value(m, "wsgate_admission_decisions_total", pool="app", decision="admitted") == 4
        assert value(m, "wsgate_handshake_duration_seconds_count", pool="app") == 4
        assert value(m, "wsgate_handshake_duration_seconds_sum", pool="app") > 0
        assert value(m, "wsgate_tunnel_bytes_total", pool="app", direction="up") > 0
        assert value(m, "wsgate_tunnel_bytes_total", pool="app", direction="down") > 0
        m = wait_until(lambda: _when(admin, lambda m: value(m, "wsgate_tunnels_open") == 1))
        assert value(m, "wsgate_tunnels_open", pool="app") == 1
        assert value(m, "wsgate_workers", phase="running") == workers
        assert value(m, "wsgate_backend_healthy", pool="app") == 1
        assert value(m, "wsgate_handshake_limit", pool="app") >= workers
        assert value(m, "wsgate_queue_capacity", pool="slow") == workers

        # -- a storm on the slow pool: slots, a queue, 503s ------------------------------
        with ThreadPoolExecutor(STORM) as pool:
            results = [pool.submit(handshake, f"{gw.url}/slow/{i}") for i in range(STORM)]
            busy = wait_until(
                lambda: _when(
                    admin,
                    lambda m: (
                        value(m, "wsgate_queue_length", pool="slow") >= 1
                        and value(m, "wsgate_handshakes_in_flight", pool="slow") >= 1
                    ),
                )
            )
            assert value(busy, "wsgate_handshakes_in_flight", pool="slow") <= workers
            statuses = sorted(r.result(timeout=60) for r in results)
        ok, refused = statuses.count(101), statuses.count(503)
        assert ok + refused == STORM and refused >= 2, statuses
        m = scrape(admin)
        decided = {
            d: value(m, "wsgate_admission_decisions_total", pool="slow", decision=d)
            for d in ("admitted", "queued", "dequeued", "queue_full")
        }
        assert decided["queue_full"] == refused, decided
        assert decided["queued"] >= 1 and decided["dequeued"] == decided["queued"], decided
        assert decided["admitted"] + decided["dequeued"] == ok, decided
        assert (
            value(m, "wsgate_errors_total", pool="slow", cause="overloaded_queue_full") == refused
        )
        assert value(m, "wsgate_queue_wait_seconds_count", pool="slow") == decided["queued"]
        # Waiting behind a 1.5 s handshake: the waits land in the buckets above 1 s.
        assert value(m, "wsgate_queue_wait_seconds_bucket", pool="slow", le="0.5") == 0
        assert value(m, "wsgate_upgrades_total", pool="slow") == ok
        assert value(m, "wsgate_handshake_duration_seconds_bucket", pool="slow", le="1.0") == 0

        # -- the app backend is killed: the open tunnel breaks, the next handshake fails ----
        app_backend.popen.kill()
        app_backend.popen.wait(timeout=10)
        m = wait_until(
            lambda: _when(
                admin, lambda m: value(m, "wsgate_errors_total", cause="upstream_tunnel_broken")
            )
        )
        assert value(m, "wsgate_errors_total", pool="app", cause="upstream_tunnel_broken") == 1
        held.close()
        assert handshake(f"{gw.url}/after") == 502
        m = wait_until(
            lambda: _when(admin, lambda m: value(m, "wsgate_backend_healthy", pool="app") == 0)
        )
        assert value(m, "wsgate_errors_total", pool="app", cause="upstream_connect_refused") == 1
        assert value(m, "wsgate_handshakes_total", pool="app", outcome="failed") == 1
        assert value(m, "wsgate_backend_ejections_total", pool="app") == 1
        assert value(m, "wsgate_backend_ejected", pool="app") == 1
        assert value(m, "wsgate_tunnels_open", pool="app") == 0
        names_and_help(m)

        status, ready = get_json(admin, "/readyz")
        assert status == 503 and not ready["ready"]
        assert any("pool app has no healthy backend" in r for r in ready["reasons"]), ready
        status, state = get_json(admin, "/api/state")
        assert status == 200 and state["workers"] == workers
        (refusal,) = [e for e in state["errors"] if e["cause"] == "upstream_connect_refused"]
        assert refusal["status"] == 502 and "refused" in refusal["summary"]
        assert refusal["pool"] == "app" and refusal["fix"]
        (backend,) = state["pools"]["app"]["backends"]
        assert backend["ejected"] and not backend["healthy"]
        gw.proc.popen.terminate()
        assert gw.proc.popen.wait(timeout=30) == 0


def _up(port: int) -> tuple[int, Any] | None:
    try:
        status, body = get_json(port, "/healthz")
    except OSError:
        return None
    return (status, body) if status == 200 else None


def _when(port: int, check: Any) -> list[Any] | None:
    families = scrape(port)
    return families if check(families) else None


def test_metrics_off_serves_no_metrics(tmp_path: Path) -> None:
    admin, app, slow = free_port(), free_port(), free_port()
    text = config(admin, app, slow).replace("[admin]\n", "[admin]\nmetrics = false\n")
    with named_backend(tmp_path, app, "app"), serve(tmp_path, text) as gw:
        wait_until(lambda: _up(admin))
        assert handshake(f"{gw.url}/chat") == 101
        status, _, body = request(admin, "GET", "/metrics")
        assert status == 404 and b"metrics are off" in body
        status, state = get_json(admin, "/api/state")
        assert status == 200 and state["pools"]["app"]["backends"][0]["healthy"]
