"""Real processes for end-to-end tests: free ports, nginx and HAProxy on 127.0.0.1.

Every process started here is stopped by its PID (never by name), and every wait is
bounded. Configs are written into the test's tmp_path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s") from None
            time.sleep(0.05)


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout_s)


def start_process(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> Proc:
    log = log_path.open("wb")
    popen = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )
    log.close()
    return Proc(popen, log_path)


@contextlib.contextmanager
def running(argv: list[str], log_path: Path, port: int | None = None) -> Iterator[Proc]:
    """Start argv, wait until `port` accepts connections, stop it by PID afterwards."""
    proc = start_process(argv, log_path)
    try:
        if port is not None:
            try:
                wait_for_port(port)
            except TimeoutError:
                raise RuntimeError(f"{argv[0]} did not start:\n{proc.log()}") from None
        yield proc
    finally:
        proc.stop()


NGINX_MAIN = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{http_body}
}}
"""


@contextlib.contextmanager
def nginx(
    http_body: str, tmp_path: Path, port: int, worker_connections: int = 1024
) -> Iterator[Proc]:
    """Run Debian's nginx with `http_body` inside its http {} block; `port` is the one the
    body's server listens on (listen 127.0.0.1:PORT)."""
    prefix = tmp_path / f"nginx-{port}"
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_MAIN.format(prefix=prefix, http_body=http_body, worker_connections=worker_connections)
    )
    argv = [NGINX, "-p", str(prefix), "-c", str(conf)]
    with running(argv, prefix / "stdout.log", port) as proc:
        yield proc


@contextlib.contextmanager
def haproxy(config: str, tmp_path: Path, port: int) -> Iterator[Proc]:
    """Run Debian's HAProxy in the foreground with `config` (a whole haproxy.cfg)."""
    prefix = tmp_path / f"haproxy-{port}"
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "haproxy.cfg"
    conf.write_text(config)
    argv = [HAPROXY, "-db", "-f", str(conf)]
    with running(argv, prefix / "stdout.log", port) as proc:
        yield proc
