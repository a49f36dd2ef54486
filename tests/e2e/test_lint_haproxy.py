"""Real HAProxy in front of a real `websockets` backend: each broken config fails the way
`wsgate lint` says it will, and the lines lint prints in its fix make it work.

The fix is applied by taking the backticked config lines out of the printed finding and
appending them to the backend section the finding names.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from tests.support.backends import ws_server
from tests.support.procs import free_port, haproxy
from wsgate.lint.engine import lint_config
from wsgate.lint.loader import load
from wsgate.lint.model import Finding

pytestmark = pytest.mark.e2e

IDLE_CUT_S = 2  # timeout server in the idle-cut config: short, so the test is quick
_SNIPPET = re.compile(r"`([^`]+)`")

CONFIG = """\
global
    maxconn 200

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server {server_timeout}

frontend fe
    bind 127.0.0.1:{port}
    default_backend ws_backend

backend ws_backend
    balance leastconn
{backend_lines}
    server s1 127.0.0.1:{backend}{server_opts}
"""


def write_and_lint(tmp_path: Path, text: str) -> list[Finding]:
    path = tmp_path / f"lint-{len(list(tmp_path.iterdir()))}-haproxy.cfg"
    path.write_text(text)
    return lint_config(load(str(path)))


def fix_lines(findings: list[Finding], code: str) -> str:
    found = [f for f in findings if f.code == code]
    assert found, f"lint did not report {code}: {[f.code for f in findings]}"
    return "\n".join(f"    {s}" for f in found for s in _SNIPPET.findall(f.fix))


def idle_then_echo(url: str, idle_s: float) -> None:
    with connect(url, open_timeout=20, ping_interval=None) as ws:
        time.sleep(idle_s)
        ws.send("still there?")
        assert ws.recv(timeout=20) == "still there?"


def test_no_timeout_tunnel_cuts_idle_websocket_at_timeout_server(tmp_path: Path) -> None:
    with ws_server(ping_interval=None) as backend:
        port = free_port()
        broken = CONFIG.format(
            server_timeout=f"{IDLE_CUT_S}s", port=port, backend=backend,
            backend_lines="", server_opts="",
        )  # fmt: skip
        findings = write_and_lint(tmp_path, broken)
        cut = [f for f in findings if f.code == "haproxy_no_timeout_tunnel"]
        assert len(cut) == 1 and f"after {IDLE_CUT_S} s" in cut[0].message
        with haproxy(broken, tmp_path, port):
            with pytest.raises(ConnectionClosedError) as closed:
                idle_then_echo(f"ws://127.0.0.1:{port}/", IDLE_CUT_S * 2 + 1)
            assert closed.value.rcvd is None  # cut without a close frame: 1006

        lines = fix_lines(findings, "haproxy_no_timeout_tunnel")
        assert lines.strip().startswith("timeout tunnel")
        port = free_port()
        fixed = CONFIG.format(
            server_timeout=f"{IDLE_CUT_S}s", port=port, backend=backend,
            backend_lines=lines, server_opts="",
        )  # fmt: skip
        assert not [f for f in write_and_lint(tmp_path, fixed) if f.code == cut[0].code]
        with haproxy(fixed, tmp_path, port):
            idle_then_echo(f"ws://127.0.0.1:{port}/", IDLE_CUT_S * 2 + 1)


def status_within(url: str, want: int | None, timeout_s: float = 30.0) -> None:
    """Wait until a handshake gets HTTP status `want` (None: succeeds), as health checks
    settle; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            with connect(url, open_timeout=10, ping_interval=None) as ws:
                ws.send("ping?")
                assert ws.recv(timeout=10) == "ping?"
                last = None
        except InvalidStatus as exc:
            last = exc.response.status_code
        if last == want:
            return
        time.sleep(0.3)
    raise AssertionError(f"wanted {want}, last result {last}")


def test_plain_httpchk_marks_websocket_server_down_503(tmp_path: Path) -> None:
    opts = " check inter 300ms fall 1 rise 1"
    with ws_server() as backend:
        port = free_port()
        broken = CONFIG.format(
            server_timeout="30s", port=port, backend=backend,
            backend_lines="    timeout tunnel 1h\n    option httpchk GET /", server_opts=opts,
        )  # fmt: skip
        findings = write_and_lint(tmp_path, broken)
        (chk,) = [f for f in findings if f.code == "haproxy_httpchk_no_upgrade"]
        assert "503" in chk.symptom
        with haproxy(broken, tmp_path, port) as proc:
            status_within(f"ws://127.0.0.1:{port}/", 503)
            assert "is DOWN" in proc.log()

        port = free_port()
        fixed = CONFIG.format(
            server_timeout="30s",
            port=port,
            backend=backend,
            backend_lines="    timeout tunnel 1h\n    option httpchk GET /\n"
            + fix_lines(findings, "haproxy_httpchk_no_upgrade"),
            server_opts=opts,
        )
        assert "http-check expect status 101" in fixed
        assert not [f for f in write_and_lint(tmp_path, fixed) if f.code == chk.code]
        with haproxy(fixed, tmp_path, port) as proc:
            time.sleep(1.5)  # several check intervals: a failing check would mark it down
            status_within(f"ws://127.0.0.1:{port}/", None)
            for _ in range(3):
                status_within(f"ws://127.0.0.1:{port}/", None, timeout_s=1.0)
            assert "is DOWN" not in proc.log()
