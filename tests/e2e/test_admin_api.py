"""The admin API over real sockets: drain and enable a backend (one worker and two), the
bearer token, the loopback Host rule, cross-origin POSTs, the dashboard's headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.admin import get_json, request, scrape, serve, value, wait_until
from tests.support.backends import named_backend
from tests.support.procs import free_port

pytestmark = pytest.mark.e2e

TOKEN = "test-token-0123456789abcdef"
CONFIG = """
[server]
listen = ["127.0.0.1:{port}"]
access_log = false

[admin]
listen = "127.0.0.1:ADMIN"
TOKEN_LINE

[pools.app]
backends = ["127.0.0.1:A", "127.0.0.1:B"]
balance = "round_robin"
health = { kind = "none" }
"""


def config(admin: int, a: int, b: int, token: str = "") -> str:
    text = CONFIG.replace("ADMIN", str(admin)).replace('A"', f'{a}"').replace('B"', f'{b}"')
    return text.replace("TOKEN_LINE", f'token = "{token}"' if token else "")


def open_tunnel(url: str) -> tuple[ClientConnection, str]:
    ws = connect(url, open_timeout=30, legacy=True)
    return ws, str(ws.recv(timeout=20))


def closed_with(ws: ClientConnection) -> int | None:
    try:
        ws.recv(timeout=0.05)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else -1
    except TimeoutError:
        return None
    return None


def greeting(url: str) -> str:
    with connect(url, open_timeout=30) as ws:
        return str(ws.recv(timeout=20))


@pytest.mark.parametrize("workers", [1, 2])
def test_drain_and_enable_a_backend(tmp_path: Path, workers: int) -> None:
    admin, a, b = free_port(), free_port(), free_port()
    with (
        named_backend(tmp_path, a, "a"),
        named_backend(tmp_path, b, "b"),
        serve(tmp_path, config(admin, a, b), workers=workers) as gw,
    ):
        wait_until(lambda: get_json(admin, "/readyz")[1]["ready"])
        tunnels = [open_tunnel(f"{gw.url}/t{i}") for i in range(8)]
        on_a = [ws for ws, name in tunnels if name == "a"]
        on_b = [ws for ws, name in tunnels if name == "b"]
        assert on_a and on_b

        status, _, body = request(admin, "POST", f"/api/backends/127.0.0.1:{a}/drain?over_s=1")
        assert status == 202, body

        def closed_codes() -> list[int | None] | None:
            found = [closed_with(ws) for ws in on_a]
            return found if found and all(found) else None

        # Closed over about over_s = 1 s: well before the 30 s drain timeout a paced close
        # that never started would end at (generous for a slow machine).
        codes = wait_until(closed_codes, timeout_s=20)
        assert set(codes) == {1012}  # service restart: come back, to another backend
        assert all(closed_with(ws) is None for ws in on_b)  # the other backend's stay
        assert {greeting(f"{gw.url}/n{i}") for i in range(6)} == {"b"}
        _, state = get_json(admin, "/api/state")
        drained = {x["name"]: x["drained"] for x in state["pools"]["app"]["backends"]}
        assert drained == {f"127.0.0.1:{a}": True, f"127.0.0.1:{b}": False}

        def drained_in_metrics() -> list[Any] | None:
            m = scrape(admin)
            return m if m and value(m, "wsgate_backend_drained") else None

        m = wait_until(drained_in_metrics)
        assert value(m, "wsgate_backend_drained", backend=f"127.0.0.1:{a}") == 1
        assert value(m, "wsgate_backend_healthy", backend=f"127.0.0.1:{a}") == 0
        actions = value(m, "wsgate_backend_admin_actions_total", action="drain")
        assert actions == workers

        status, _, _ = request(admin, "POST", f"/api/backends/127.0.0.1:{a}/enable")
        assert status == 202
        wait_until(lambda: "a" in {greeting(f"{gw.url}/e{i}") for i in range(4)}, timeout_s=5)
        for ws, _ in tunnels:
            ws.close()

        assert request(admin, "POST", "/api/backends/127.0.0.1:1/drain")[0] == 404
        assert request(admin, "POST", f"/api/backends/127.0.0.1:{a}/reboot")[0] == 404
        assert request(admin, "POST", f"/api/backends/127.0.0.1:{a}/drain?over_s=-1")[0] == 400
        assert request(admin, "POST", f"/api/backends/127.0.0.1:{a}/drain?over_s=nan")[0] == 400
        assert request(admin, "GET", f"/api/backends/127.0.0.1:{a}/drain")[0] == 405


def test_token_host_and_origin_rules(tmp_path: Path) -> None:
    admin, a, b = free_port(), free_port(), free_port()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with named_backend(tmp_path, a, "a"), serve(tmp_path, config(admin, a, b, TOKEN)) as gw:
        wait_until(lambda: get_json(admin, "/healthz")[0] == 200)
        status, headers, _ = request(admin, "GET", "/metrics")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert request(admin, "GET", "/metrics", {"Authorization": "Bearer wrong"})[0] == 401
        assert request(admin, "GET", "/api/state", {"Authorization": f"Bearer {TOKEN}x"})[0] == 401
        assert request(admin, "GET", "/metrics", bearer)[0] == 200
        assert request(admin, "GET", "/readyz")[0] in (200, 503)  # probes need no token
        status, headers, _ = request(admin, "GET", f"/?token={TOKEN}")
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
        assert request(admin, "GET", "/api/state", {"Cookie": cookie})[0] == 200
        status, headers, page = request(admin, "GET", "/", {"Cookie": cookie})
        assert status == 200 and b"/dashboard.js" in page
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        log = gw.proc.log()
        assert '"event":"admin_listening"' in log and '"auth":"bearer token"' in log


def test_loopback_without_token_refuses_other_hosts_and_origins(tmp_path: Path) -> None:
    admin, a, b = free_port(), free_port(), free_port()
    with named_backend(tmp_path, a, "a"), serve(tmp_path, config(admin, a, b)):
        wait_until(lambda: get_json(admin, "/healthz")[0] == 200)
        # DNS rebinding: a page of evil.example that resolves to 127.0.0.1.
        assert request(admin, "GET", "/api/state", {"Host": "evil.example"})[0] == 403
        assert request(admin, "GET", "/api/state", {"Host": f"localhost:{admin}"})[0] == 200
        drain = f"/api/backends/127.0.0.1:{a}/drain"
        evil = {"Origin": "http://evil.example"}
        assert request(admin, "POST", drain, evil)[0] == 403
        same = {"Origin": f"http://127.0.0.1:{admin}"}
        assert request(admin, "POST", drain, same)[0] == 202
        assert request(admin, "GET", "/nothing")[0] == 404
        assert request(admin, "DELETE", "/metrics")[0] == 405
