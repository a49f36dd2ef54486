"""Real HAProxy in front of a real `websockets` backend: each broken config fails the way
`wsgate lint` says it will, and the lines lint prints in its fix make it work.

The fix is applied by taking the backticked config lines out of the printed finding and
appending them to the backend section the finding names.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection
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


def test_deleting_connection_header_gets_426_and_the_guard_fixes_it(tmp_path: Path) -> None:
    rule = "http-request del-header Connection"
    with ws_server() as backend:
        port = free_port()
        broken = CONFIG.format(
            server_timeout="30s", port=port, backend=backend,
            backend_lines=f"    timeout tunnel 1h\n    {rule}", server_opts="",
        )  # fmt: skip
        findings = write_and_lint(tmp_path, broken)
        (removed,) = [f for f in findings if f.code == "haproxy_upgrade_header_removed"]
        assert removed.severity.value == "error" and "426" in removed.symptom
        with haproxy(broken, tmp_path, port):
            status_within(f"ws://127.0.0.1:{port}/", 426, timeout_s=10)

        guard = [s for s in _SNIPPET.findall(removed.fix) if s.startswith("unless")]
        assert guard == ["unless { hdr(upgrade) -i websocket }"]
        port = free_port()
        fixed = CONFIG.format(
            server_timeout="30s", port=port, backend=backend,
            backend_lines=f"    timeout tunnel 1h\n    {rule} {guard[0]}", server_opts="",
        )  # fmt: skip
        assert not [f for f in write_and_lint(tmp_path, fixed) if f.code == removed.code]
        with haproxy(fixed, tmp_path, port):
            status_within(f"ws://127.0.0.1:{port}/", None, timeout_s=10)


def test_maxconn_without_timeout_queue_503_after_timeout_connect(tmp_path: Path) -> None:
    connect_s = 2
    with ws_server() as backend:
        port = free_port()
        config = CONFIG.replace("timeout connect 5s", f"timeout connect {connect_s}s")
        broken = config.format(
            server_timeout="30s", port=port, backend=backend,
            backend_lines="    timeout tunnel 1h", server_opts=" maxconn 1",
        )  # fmt: skip
        findings = write_and_lint(tmp_path, broken)
        (queue,) = [f for f in findings if f.code == "haproxy_queue_timeout"]
        assert f"wait {connect_s} s and then get 503" in queue.message
        url = f"ws://127.0.0.1:{port}/"
        with haproxy(broken, tmp_path, port), connect(url, open_timeout=20) as first:
            first.send("hold")
            assert first.recv(timeout=20) == "hold"
            started = time.monotonic()
            status_within(url, 503, timeout_s=connect_s + 10)
            assert time.monotonic() - started >= connect_s * 0.9

        lines = fix_lines(findings, "haproxy_queue_timeout")
        assert lines.strip().startswith("timeout queue")
        port = free_port()
        fixed = config.format(
            server_timeout="30s", port=port, backend=backend,
            backend_lines="    timeout tunnel 1h\n" + lines, server_opts=" maxconn 1",
        )  # fmt: skip
        assert not [f for f in write_and_lint(tmp_path, fixed) if f.code == queue.code]
        url = f"ws://127.0.0.1:{port}/"
        with haproxy(fixed, tmp_path, port), connect(url, open_timeout=20) as first:
            first.send("hold")
            assert first.recv(timeout=20) == "hold"
            # The second handshake waits in the queue longer than timeout connect and gets
            # the server as soon as the first WebSocket closes.
            timer = threading.Timer(connect_s + 1.0, first.close)
            timer.start()
            started = time.monotonic()
            try:
                with connect(url, open_timeout=30) as second:
                    second.send("queued")
                    assert second.recv(timeout=20) == "queued"
            finally:
                timer.cancel()
            assert time.monotonic() - started >= connect_s


async def tagged_echo(conn: ServerConnection) -> None:
    """Echo with a tag, so a test can tell which backend answered."""
    async for message in conn:
        text = message if isinstance(message, str) else message.decode()
        await conn.send(f"elsewhere: {text}")


def test_tcp_frontend_header_rule_sends_websockets_elsewhere(tmp_path: Path) -> None:
    with ws_server() as backend, ws_server(tagged_echo) as elsewhere:
        port = free_port()
        config = """\
defaults
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h

frontend edge
    mode {mode}
    bind 127.0.0.1:{port}
    use_backend ws_nodes if {{ hdr(Upgrade) -i websocket }}
    default_backend elsewhere

backend ws_nodes
    mode {mode}
    balance leastconn
    server s1 127.0.0.1:{backend}

backend elsewhere
    mode {mode}
    server s2 127.0.0.1:{elsewhere}
"""
        broken = config.format(mode="tcp", port=port, backend=backend, elsewhere=elsewhere)
        findings = write_and_lint(tmp_path, broken)
        (mismatch,) = [f for f in findings if f.code == "haproxy_mode_mismatch"]
        assert "go to the default backend" in mismatch.message
        with haproxy(broken, tmp_path, port) as proc:
            # The rule never matched: the handshake went to the default backend.
            with connect(f"ws://127.0.0.1:{port}/", open_timeout=20) as ws:
                ws.send("where am I?")
                assert ws.recv(timeout=20) == "elsewhere: where am I?"
            assert proc.popen.poll() is None

        (snippet,) = _SNIPPET.findall(mismatch.fix)
        assert snippet == "mode http"
        port = free_port()
        fixed = config.format(mode="http", port=port, backend=backend, elsewhere=elsewhere)
        assert not [f for f in write_and_lint(tmp_path, fixed) if f.code == mismatch.code]
        with haproxy(fixed, tmp_path, port), connect(f"ws://127.0.0.1:{port}/") as ws:
            ws.send("where am I?")
            assert ws.recv(timeout=20) == "where am I?"


def test_timeout_tunnel_in_the_frontend_is_ignored(tmp_path: Path) -> None:
    with ws_server(ping_interval=None) as backend:
        port = free_port()
        config = CONFIG.format(
            server_timeout=f"{IDLE_CUT_S}s", port=port, backend=backend,
            backend_lines="{backend_lines}", server_opts="",
        )  # fmt: skip
        broken = config.replace(
            "default_backend ws_backend", "timeout tunnel 1h\n    default_backend ws_backend"
        ).format(backend_lines="")
        findings = write_and_lint(tmp_path, broken)
        (ignored,) = [f for f in findings if f.code == "haproxy_tunnel_timeout_ignored"]
        assert [f.code for f in findings if f.code == "haproxy_no_timeout_tunnel"]
        with haproxy(broken, tmp_path, port) as proc:
            with pytest.raises(ConnectionClosedError):
                idle_then_echo(f"ws://127.0.0.1:{port}/", IDLE_CUT_S * 2 + 1)
            assert "'timeout tunnel' will be ignored" in proc.log()

        # The fix: "Move `timeout tunnel 1h` into the backend(s) ws_backend."
        moved = _SNIPPET.findall(ignored.fix)[0]
        assert moved == "timeout tunnel 1h" and "ws_backend" in ignored.fix
        port = free_port()
        fixed = CONFIG.format(
            server_timeout=f"{IDLE_CUT_S}s", port=port, backend=backend,
            backend_lines=f"    {moved}", server_opts="",
        )  # fmt: skip
        assert not [f for f in write_and_lint(tmp_path, fixed) if "tunnel" in f.code]
        with haproxy(fixed, tmp_path, port):
            idle_then_echo(f"ws://127.0.0.1:{port}/", IDLE_CUT_S * 2 + 1)
