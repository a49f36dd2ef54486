"""examples/: the commented wsgate.toml, and the nginx and HAProxy configs in front of it.
Each is checked by the tool that will read it (`wsgate check` and `wsgate lint`,
`nginx -t`, `haproxy -c`), and then run as written (only the ports changed) with real
backends on 127.0.0.1: a WebSocket goes through the proxy and wsgate and back."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.backends import ws_server
from tests.support.http_backend import http_backend
from tests.support.procs import (
    HAPROXY,
    NGINX,
    NGINX_MAIN,
    free_port,
    haproxy,
    nginx,
    running,
    wait_for_port,
)
from wsgate.lint.engine import lint_config
from wsgate.lint.loader import load

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WSGATE_TOML = EXAMPLES / "wsgate.toml"
NGINX_SITE = EXAMPLES / "nginx.conf"
HAPROXY_CFG = EXAMPLES / "haproxy.cfg"


def wsgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsgate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_wsgate_example_is_clean_for_check_and_lint() -> None:
    checked = wsgate("check", str(WSGATE_TOML))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{WSGATE_TOML}: ok: listen 127.0.0.1:8080;")
    assert len(checked.stdout.splitlines()) == 1  # no lint finding below the summary
    linted = wsgate("lint", str(WSGATE_TOML))
    assert linted.returncode == 0
    assert linted.stdout.strip() == "0 errors, 0 warnings, 0 infos in 1 file"


def test_every_example_explains_itself_in_comments() -> None:
    for path in (WSGATE_TOML, NGINX_SITE, HAPROXY_CFG):
        lines = path.read_text().splitlines()
        assert lines[0].startswith("# "), path
        assert sum(line.lstrip().startswith("#") for line in lines) >= 15, path


def nginx_main(prefix: Path, site: Path) -> Path:
    """A main nginx.conf whose files all live under `prefix` and whose http {} includes
    `site`, as Debian's includes conf.d/*.conf."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    body = f"    include {site};"
    conf.write_text(NGINX_MAIN.format(prefix=prefix, http_body=body, worker_connections=4096))
    return conf


def test_the_nginx_example_passes_nginx_t_and_lint(tmp_path: Path) -> None:
    conf = nginx_main(tmp_path / "nginx", NGINX_SITE)
    tested = subprocess.run(
        [NGINX, "-t", "-p", str(conf.parent), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tested.returncode == 0, tested.stderr
    assert "test is successful" in tested.stderr
    assert lint_config(load(str(NGINX_SITE))) == []


def test_the_haproxy_example_passes_haproxy_c_and_lint() -> None:
    tested = subprocess.run(
        [HAPROXY, "-c", "-f", str(HAPROXY_CFG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Configuration file is valid" in tested.stdout + tested.stderr
    assert "[WARNING]" not in tested.stdout + tested.stderr
    found = lint_config(load(str(HAPROXY_CFG)))
    # The health check goes to wsgate's admin port (`check port`) for /readyz, not to a
    # WebSocket server: lint reads `check port` and has nothing to say.
    assert found == []


@contextmanager
def wsgate_from_example(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """examples/wsgate.toml with its ports moved: real chat and app backends behind it.
    Yields the gateway's port and its admin port."""
    port, admin = free_port(), free_port()
    with ExitStack() as stack:
        chat = [stack.enter_context(ws_server()) for _ in range(2)]
        app = [stack.enter_context(http_backend()) for _ in range(2)]
        text = WSGATE_TOML.read_text()
        for old, new in (
            ("127.0.0.1:8080", port),
            ("127.0.0.1:9180", admin),
            ("127.0.0.1:9100", chat[0]),
            ("127.0.0.1:9101", chat[1]),
            ("127.0.0.1:9001", app[0]),
            ("127.0.0.1:9002", app[1]),
        ):
            assert old in text
            text = text.replace(old, f"127.0.0.1:{new}")
        config = tmp_path / "wsgate.toml"
        config.write_text(text)
        argv = [sys.executable, "-m", "wsgate", "serve", "--config", str(config)]
        stack.enter_context(running(argv, tmp_path / "wsgate.log", port))
        wait_for_port(admin)  # opened after the traffic port
        yield port, admin


def echo_through(port: int) -> str:
    deadline = time.monotonic() + 20
    while True:  # until the proxy's and wsgate's health checks have passed
        try:
            with connect(f"ws://127.0.0.1:{port}/chat?room=1", open_timeout=10) as ws:
                ws.send("hello through the examples")
                return str(ws.recv(timeout=10))
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_nginx_example_in_front_of_the_wsgate_example(tmp_path: Path) -> None:
    with wsgate_from_example(tmp_path) as (gateway, _):
        port = free_port()
        site = tmp_path / "site.conf"
        text = NGINX_SITE.read_text()
        assert "listen 80;" in text and "server 127.0.0.1:8080;" in text
        text = text.replace("listen 80;", f"listen 127.0.0.1:{port};")
        site.write_text(text.replace("127.0.0.1:8080", f"127.0.0.1:{gateway}"))
        body = f"    include {site};"
        with nginx(body, tmp_path, port):
            assert echo_through(port) == "hello through the examples"


def test_haproxy_example_in_front_of_the_wsgate_example(tmp_path: Path) -> None:
    with wsgate_from_example(tmp_path) as (gateway, admin):
        port = free_port()
        text = HAPROXY_CFG.read_text()
        for old, new in (
            ("bind :80", f"bind 127.0.0.1:{port}"),
            ("127.0.0.1:8080", f"127.0.0.1:{gateway}"),
            ("check port 9180", f"check port {admin}"),
            # Logs (and the servers' state changes) to the test's log, not to syslog.
            ("log /dev/log local0", "log stderr format raw local0"),
        ):
            assert old in text
            text = text.replace(old, new)
        with haproxy(text, tmp_path, port) as proc:
            assert echo_through(port) == "hello through the examples"
            # Two checks a second apart would have marked it down (fall 2) had wsgate's
            # /readyz not answered 200 to HAProxy's request.
            time.sleep(2.5)
            assert "is DOWN" not in proc.log()
            assert echo_through(port) == "hello through the examples"
