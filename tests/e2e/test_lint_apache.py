"""Real Apache httpd (Debian's apache2, started in the foreground with -X) in front of a real
`websockets` backend: each broken config fails the way `wsgate lint` says it will, and the
fix lint prints makes it work."""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from tests.support.backends import ws_server
from tests.support.procs import Proc, free_port, running
from wsgate.lint.engine import lint_config
from wsgate.lint.loader import load
from wsgate.lint.model import Finding

pytestmark = pytest.mark.e2e

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
IDLE_CUT_S = 2  # Timeout in the idle-cut config: short, so the test is quick
_SNIPPET = re.compile(r"`([^`]+)`")

MAIN = """\
ServerRoot "{prefix}"
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {prefix}/httpd.pid
ErrorLog {prefix}/error.log
LogLevel info
DefaultRuntimeDir {prefix}
Mutex file:{prefix} default
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule proxy_module {modules}/mod_proxy.so
LoadModule proxy_http_module {modules}/mod_proxy_http.so
{body}
"""


@contextlib.contextmanager
def apache(body: str, tmp_path: Path, port: int) -> Iterator[tuple[Proc, Path]]:
    """Run apache2 -X (one process, foreground) with `body` after the base config."""
    prefix = tmp_path / f"apache-{port}"
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "httpd.conf"
    conf.write_text(MAIN.format(prefix=prefix, port=port, modules=MODULES, body=body))
    with running([APACHE, "-X", "-f", str(conf)], prefix / "stdout.log", port) as proc:
        yield proc, conf


def lint(conf: Path) -> list[Finding]:
    return lint_config(load(str(conf)))


def only(findings: list[Finding], code: str) -> Finding:
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, [(f.code, f.message) for f in findings]
    return found[0]


def handshake_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as failed, connect(url, open_timeout=20):
        pass
    return failed.value.response.status_code


def idle_then_echo(url: str, idle_s: float) -> None:
    with connect(url, open_timeout=20, ping_interval=None) as ws:
        ws.send("hello")
        assert ws.recv(timeout=20) == "hello"
        time.sleep(idle_s)
        ws.send("still there?")
        assert ws.recv(timeout=20) == "still there?"


def test_proxypass_without_upgrade_gets_426(tmp_path: Path) -> None:
    with ws_server() as backend:
        line = f"ProxyPass /ws/ http://127.0.0.1:{backend}/"
        port = free_port()
        with apache(f"Timeout 300\n{line}\n", tmp_path, port) as (_proc, conf):
            found = only(lint(conf), "apache_no_upgrade")
            assert found.severity.value == "error" and "426" in found.symptom
            assert handshake_status(f"ws://127.0.0.1:{port}/ws/") == 426

        # The fix: "Append `upgrade=websocket` to `ProxyPass ...`".
        append, target = _SNIPPET.findall(found.fix)[:2]
        assert target == line
        port = free_port()
        with apache(f"Timeout 300\n{line} {append}\n", tmp_path, port) as (_proc, conf):
            assert [f.code for f in lint(conf)] == []
            idle_then_echo(f"ws://127.0.0.1:{port}/ws/", 0)


def test_shared_worker_ignores_upgrade_and_moving_the_line_fixes_it(tmp_path: Path) -> None:
    with ws_server() as backend:
        app = f"ProxyPass /app/ http://127.0.0.1:{backend}/"
        live = f"ProxyPass /app/live/ http://127.0.0.1:{backend}/live/ upgrade=websocket"
        port = free_port()
        with apache(f"Timeout 300\n{app}\n{live}\n", tmp_path, port) as (proc, conf):
            found = only(lint(conf), "apache_shared_worker")
            assert found.severity.value == "error" and "426" in found.symptom
            assert handshake_status(f"ws://127.0.0.1:{port}/app/live/") == 426
            assert "AH01146" in (conf.parent / "error.log").read_text()
            assert proc.popen.poll() is None

        # The fix: "Move `ProxyPass /app/live/ ...` above line N".
        (moved,) = _SNIPPET.findall(found.fix)
        assert moved == live
        port = free_port()
        with apache(f"Timeout 300\n{moved}\n{app}\n", tmp_path, port) as (_proc, conf):
            assert not [f for f in lint(conf) if f.code == "apache_shared_worker"]
            idle_then_echo(f"ws://127.0.0.1:{port}/app/live/", 0)


def test_short_timeout_cuts_idle_websocket(tmp_path: Path) -> None:
    with ws_server(ping_interval=None) as backend:
        line = f"ProxyPass /ws/ http://127.0.0.1:{backend}/ upgrade=websocket"
        port = free_port()
        body = f"Timeout {IDLE_CUT_S}\n{line}\n"
        with apache(body, tmp_path, port) as (_proc, conf):
            found = only(lint(conf), "apache_timeout_short")
            assert f"after {IDLE_CUT_S} s idle" in found.message and "1006" in found.symptom
            with pytest.raises(ConnectionClosedError) as closed:
                idle_then_echo(f"ws://127.0.0.1:{port}/ws/", IDLE_CUT_S * 2 + 1)
            assert closed.value.rcvd is None  # no close frame: the client sees 1006

        # The fix: "Append `timeout=3600` to the ProxyPass line for /ws/ ...".
        append = _SNIPPET.findall(found.fix)[0]
        assert append.startswith("timeout=")
        port = free_port()
        with apache(f"Timeout {IDLE_CUT_S}\n{line} {append}\n", tmp_path, port) as (_p, conf):
            assert [f.code for f in lint(conf)] == []
            idle_then_echo(f"ws://127.0.0.1:{port}/ws/", IDLE_CUT_S * 2 + 1)
