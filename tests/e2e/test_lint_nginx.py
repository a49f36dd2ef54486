"""Real nginx in front of a real `websockets` backend: each broken config fails the way
`wsgate lint` says it will, and the config text that lint prints in its fix makes it work.

The fix is applied by taking the backticked config text out of the printed finding and
putting it where the finding says (the location, or the http block for a `map`).
"""

from __future__ import annotations

import http.client
import re
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidMessage, InvalidStatus
from websockets.sync.client import connect

from tests.support.backends import ws_server
from tests.support.http_backend import Handler, http_backend
from tests.support.procs import free_port, nginx
from wsgate.cli import main
from wsgate.findings.model import Severity
from wsgate.lint.engine import lint_config
from wsgate.lint.loader import load
from wsgate.lint.model import Finding, Options

pytestmark = pytest.mark.e2e

IDLE_CUT_S = 2  # proxy_read_timeout in the idle-cut config: short, so the test is quick
_SNIPPET = re.compile(r"`([^`]+)`")


def lint_running(tmp_path: Path, port: int) -> list[Finding]:
    """Lint the nginx.conf the helper wrote and nginx is running with."""
    return lint_config(load(str(tmp_path / f"nginx-{port}" / "nginx.conf")))


def snippets(findings: list[Finding], code: str) -> list[str]:
    found = [f for f in findings if f.code == code]
    assert found, f"lint did not report {code}: {[f.code for f in findings]}"
    return [s for f in found for s in _SNIPPET.findall(f.fix)]


def apply_fixes(findings: list[Finding], codes: tuple[str, ...]) -> tuple[str, str]:
    """(text for the http block, text for the location) from the fixes lint printed."""
    http: list[str] = []
    location: list[str] = []
    for code in codes:
        for snippet in snippets(findings, code):
            (http if snippet.startswith("map ") else location).append(snippet)
    return "\n".join(dict.fromkeys(http)), "\n".join(dict.fromkeys(location))


def handshake_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as failed, connect(url, open_timeout=20):
        pass
    return failed.value.response.status_code


def echo_works(url: str) -> None:
    with connect(url, open_timeout=20, ping_interval=None) as ws:
        ws.send("hello")
        assert ws.recv(timeout=20) == "hello"


PLAIN = """
{http_extra}
server {{
    listen 127.0.0.1:{port};
    location /ws/ {{
        proxy_pass http://127.0.0.1:{backend};
        {location_extra}
    }}
}}
"""


def test_plain_proxy_pass_gets_505_and_the_printed_fixes_make_it_work(tmp_path: Path) -> None:
    codes = ("nginx_http_version", "nginx_upgrade_not_forwarded", "nginx_connection_not_upgrade")
    with ws_server() as backend:
        port = free_port()
        body = PLAIN.format(port=port, backend=backend, http_extra="", location_extra="")
        with nginx(body, tmp_path, port):
            findings = lint_running(tmp_path, port)
            assert {f.code for f in findings if f.severity is Severity.ERROR} == set(codes)
            # lint says: the backend answers 505 (nginx speaks HTTP/1.0 upstream).
            (version,) = [f for f in findings if f.code == "nginx_http_version"]
            assert "505" in version.symptom
            assert handshake_status(f"ws://127.0.0.1:{port}/ws/") == 505

        http_extra, location_extra = apply_fixes(findings, codes)
        assert "proxy_http_version 1.1;" in location_extra
        port = free_port()
        body = PLAIN.format(
            port=port, backend=backend, http_extra=http_extra, location_extra=location_extra
        )
        with nginx(body, tmp_path, port):
            fixed = lint_running(tmp_path, port)
            assert not [f for f in fixed if f.severity is Severity.ERROR]
            echo_works(f"ws://127.0.0.1:{port}/ws/")


INHERIT = """
map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
}}
server {{
    listen 127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    location /realtime/ {{
        proxy_set_header X-Request-Id $request_id;
        {location_extra}
        proxy_pass http://127.0.0.1:{backend};
    }}
}}
"""


def test_location_header_hides_server_upgrade_headers_426(tmp_path: Path) -> None:
    with ws_server() as backend:
        port = free_port()
        with nginx(INHERIT.format(port=port, backend=backend, location_extra=""), tmp_path, port):
            findings = lint_running(tmp_path, port)
            errors = [f for f in findings if f.severity is Severity.ERROR]
            assert [f.code for f in errors] == ["nginx_header_inheritance"]
            assert "426" in errors[0].symptom
            assert handshake_status(f"ws://127.0.0.1:{port}/realtime/") == 426

        _http, location_extra = apply_fixes(findings, ("nginx_header_inheritance",))
        port = free_port()
        body = INHERIT.format(port=port, backend=backend, location_extra=location_extra)
        with nginx(body, tmp_path, port):
            assert not [f for f in lint_running(tmp_path, port) if f.severity is Severity.ERROR]
            echo_works(f"ws://127.0.0.1:{port}/realtime/")


IDLE = """
map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
}}
server {{
    listen 127.0.0.1:{port};
    location /ws/ {{
        proxy_pass http://127.0.0.1:{backend};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        {timeout}
    }}
}}
"""


def idle_then_echo(url: str, idle_s: float) -> None:
    """Open a WebSocket, send nothing (no pings either) for idle_s, then echo once."""
    with connect(url, open_timeout=20, ping_interval=None) as ws:
        time.sleep(idle_s)
        ws.send("still there?")
        assert ws.recv(timeout=20) == "still there?"


def test_short_read_timeout_cuts_idle_websocket_with_1006(tmp_path: Path) -> None:
    broken = f"proxy_read_timeout {IDLE_CUT_S}s;"
    with ws_server(ping_interval=None) as backend:
        port = free_port()
        with nginx(IDLE.format(port=port, backend=backend, timeout=broken), tmp_path, port):
            findings = lint_running(tmp_path, port)
            cut = [f for f in findings if f.code == "nginx_read_timeout"]
            assert len(cut) == 1 and f"{IDLE_CUT_S} s" in cut[0].message
            assert "1006" in cut[0].symptom
            with pytest.raises(ConnectionClosedError) as closed:
                idle_then_echo(f"ws://127.0.0.1:{port}/ws/", IDLE_CUT_S * 2 + 1)
            assert closed.value.rcvd is None  # no close frame: the client sees 1006

        (fix,) = snippets(findings, "nginx_read_timeout")
        assert fix.startswith("proxy_read_timeout ")
        port = free_port()
        with nginx(IDLE.format(port=port, backend=backend, timeout=fix), tmp_path, port):
            assert not [f for f in lint_running(tmp_path, port) if f.code == "nginx_read_timeout"]
            idle_then_echo(f"ws://127.0.0.1:{port}/ws/", IDLE_CUT_S * 2 + 1)


def test_cli_on_the_running_config_exits_1_and_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    body = PLAIN.format(port=port, backend=free_port(), http_extra="", location_extra="")
    with nginx(body, tmp_path, port):
        conf = tmp_path / f"nginx-{port}" / "nginx.conf"
        assert main(["lint", str(conf)]) == 1
    out = capsys.readouterr().out
    line = conf.read_text().splitlines().index("    location /ws/ {") + 1
    assert f"nginx.conf:{line}: error nginx_http_version:" in out


CLEARED = """
upstream app {{
    server 127.0.0.1:{backend};
    keepalive 4;
}}
{http_extra}
server {{
    listen 127.0.0.1:{port};
    location /live/ {{
        proxy_pass http://app;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        {connection}
    }}
}}
"""


def test_connection_cleared_for_keepalive_gets_426(tmp_path: Path) -> None:
    with ws_server() as backend:
        port = free_port()
        broken = 'proxy_set_header Connection "";'
        body = CLEARED.format(port=port, backend=backend, http_extra="", connection=broken)
        with nginx(body, tmp_path, port):
            findings = lint_running(tmp_path, port)
            errors = [f for f in findings if f.severity is Severity.ERROR]
            assert [f.code for f in errors] == ["nginx_connection_not_upgrade"]
            assert "426" in errors[0].symptom and "keepalive advice" in errors[0].message
            assert handshake_status(f"ws://127.0.0.1:{port}/live/") == 426

        http_extra, connection = apply_fixes(findings, ("nginx_connection_not_upgrade",))
        port = free_port()
        body = CLEARED.format(
            port=port, backend=backend, http_extra=http_extra, connection=connection
        )
        with nginx(body, tmp_path, port):
            assert not [f for f in lint_running(tmp_path, port) if f.severity is Severity.ERROR]
            echo_works(f"ws://127.0.0.1:{port}/live/")


GOOD = IDLE.replace("{timeout}", "proxy_read_timeout 1h;")
WANTED_WS = 12  # concurrent WebSockets the test opens (the --capacity it states)


def open_many(url: str, count: int) -> tuple[int, list[BaseException]]:
    """Open `count` WebSockets at once; (how many opened, the failures)."""
    failures: list[BaseException] = []
    opened = 0
    with ExitStack() as stack:
        for _ in range(count):
            try:
                ws = stack.enter_context(connect(url, open_timeout=10, ping_interval=None))
            except Exception as exc:  # what the client sees is the point here
                failures.append(exc)
                continue
            ws.send("x")
            assert ws.recv(timeout=10) == "x"
            opened += 1
    return opened, failures


def test_too_few_worker_connections_drop_handshakes_without_status(tmp_path: Path) -> None:
    with ws_server(ping_interval=None) as backend:
        port = free_port()
        body = GOOD.format(port=port, backend=backend)
        # 16 connections: one listening socket, then two per proxied WebSocket.
        with nginx(body, tmp_path, port, worker_connections=16) as proc:
            conf = str(tmp_path / f"nginx-{port}" / "nginx.conf")
            findings = lint_config(load(conf), Options(capacity=WANTED_WS))
            (low,) = [f for f in findings if f.code == "nginx_worker_connections"]
            assert "at most 7 proxied" in low.message
            opened, failures = open_many(f"ws://127.0.0.1:{port}/ws/", WANTED_WS)
            assert 1 <= opened <= 7 and failures
            # No HTTP status: the connection is closed before any response.
            # nginx answers 500 itself when no connection is left for the backend, and
            # nothing at all when none is left for the client: never a backend status.
            for failure in failures:
                if isinstance(failure, InvalidStatus):
                    assert failure.response.status_code == 500, failure
                    assert b"nginx" in failure.response.body
                else:
                    assert isinstance(failure, TimeoutError | OSError | InvalidMessage), failure
            assert (
                "worker_connections are not enough"
                in Path(tmp_path / f"nginx-{port}" / "error.log").read_text()
            )
            assert proc.popen.poll() is None

        wc = re.search(r"`worker_connections (\d+);`", low.fix)
        assert wc is not None
        port = free_port()
        body = GOOD.format(port=port, backend=backend)
        with nginx(body, tmp_path, port, worker_connections=int(wc.group(1))):
            conf = str(tmp_path / f"nginx-{port}" / "nginx.conf")
            fixed = lint_config(load(conf), Options(capacity=WANTED_WS))
            assert not [f for f in fixed if f.code == "nginx_worker_connections"]
            opened, failures = open_many(f"ws://127.0.0.1:{port}/ws/", WANTED_WS)
            assert (opened, failures) == (WANTED_WS, [])


KEEPALIVE = """
{map}
upstream app {{
    server 127.0.0.1:{backend};
    keepalive 4;
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://app;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_read_timeout 1h;
    }}
}}
"""


def backend_connections_for_three_requests(port: int) -> int:
    Handler.peers.clear()
    for _ in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("GET", "/page")
        assert conn.getresponse().read() == b"page /page"
        conn.close()
    return len(set(Handler.peers))


def test_upgrade_map_with_close_defeats_upstream_keepalive(tmp_path: Path) -> None:
    guide_map = "map $http_upgrade $connection_upgrade { default upgrade; '' close; }"
    with http_backend() as backend:
        port = free_port()
        body = KEEPALIVE.format(map=guide_map, backend=backend, port=port)
        with nginx(body, tmp_path, port, worker_connections=4096):
            findings = lint_running(tmp_path, port)
            assert [f.code for f in findings] == ["nginx_keepalive_connection"]
            assert "new backend connection" in findings[0].symptom
            assert backend_connections_for_three_requests(port) == 3

        (fixed_map,) = snippets(findings, "nginx_keepalive_connection")
        port = free_port()
        body = KEEPALIVE.format(map=fixed_map, backend=backend, port=port)
        with nginx(body, tmp_path, port, worker_connections=4096):
            assert lint_running(tmp_path, port) == []
            assert backend_connections_for_three_requests(port) == 1
