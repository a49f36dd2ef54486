"""The deployment files and what they rely on, with real processes: sd_notify to a socket
the test makes (one process, and the parent of --workers 2), the environment variables,
the pid file and `wsgate reload`, the exit statuses the docs promise, the systemd unit
(`systemd-analyze verify`) and the Dockerfile (built and its health check run where a
container runtime works)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.admin import request
from tests.support.backends import ws_server
from tests.support.procs import Proc, free_port, start_process, wait_for_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "wsgate.service"
DOCKERFILE = ROOT / "Dockerfile"
WSGATE = [sys.executable, "-m", "wsgate"]


def env(**extra: str) -> dict[str, str]:
    """This environment without any WSGATE_ or NOTIFY_SOCKET variable, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WSGATE_", "NOTIFY_"))}
    return {**base, **extra}


@contextlib.contextmanager
def serving(
    tmp_path: Path, argv: list[str], environ: dict[str, str], port: int | None
) -> Iterator[Proc]:
    proc = start_process(
        [*WSGATE, "serve", *argv], tmp_path / f"serve-{time.monotonic_ns()}.log", environ
    )
    try:
        if port is not None:
            try:
                wait_for_port(port)
            except TimeoutError:
                raise AssertionError(f"the gateway did not start:\n{proc.log()}") from None
        yield proc
    finally:
        proc.stop(timeout_s=30)


@contextlib.contextmanager
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(30)
    try:
        yield sock, path
    finally:
        sock.close()


def fields(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def records(proc: Proc) -> list[dict[str, object]]:
    return [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]


# == sd_notify ================================================================================
def test_ready_and_stopping_are_notified(tmp_path: Path) -> None:
    port = free_port()
    with ws_server() as backend, notify_socket(tmp_path) as (sock, path):
        argv = ["--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{backend}"]
        with serving(tmp_path, argv, env(NOTIFY_SOCKET=path), None) as proc:
            ready = fields(sock.recv(4096))
            assert ready["READY"] == "1" and ready["MAINPID"] == str(proc.pid)
            assert ready["STATUS"] == f"listening on 127.0.0.1:{port}"
            # READY comes after the listener is open: a connection succeeds at once.
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            proc.popen.send_signal(signal.SIGTERM)
            stopping = fields(sock.recv(4096))
            assert stopping["STOPPING"] == "1" and "draining" in stopping["STATUS"]
            assert proc.popen.wait(timeout=30) == 0


def test_with_workers_the_parent_says_ready_once_every_worker_listens(tmp_path: Path) -> None:
    port = free_port()
    with ws_server() as backend, notify_socket(tmp_path) as (sock, path):
        argv = ["--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{backend}"]
        environ = env(NOTIFY_SOCKET=path, WSGATE_WORKERS="2")
        with serving(tmp_path, argv, environ, None) as proc:
            ready = fields(sock.recv(4096))
            assert ready["READY"] == "1" and ready["MAINPID"] == str(proc.pid)
            assert ready["STATUS"] == "2 workers listening"
            listening = {r["pid"] for r in records(proc) if r["event"] == "listening"}
            assert len(listening) == 2 and proc.pid not in listening
            proc.popen.send_signal(signal.SIGTERM)
            assert fields(sock.recv(4096))["STOPPING"] == "1"
            assert proc.popen.wait(timeout=30) == 0


# == the environment, the pid file, `wsgate reload` ===========================================
def test_zero_config_from_the_environment(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    with ws_server() as backend:
        environ = env(
            WSGATE_LISTEN=f"127.0.0.1:{port}",
            WSGATE_UPSTREAMS=f"127.0.0.1:{backend}",
            WSGATE_ADMIN=f"127.0.0.1:{admin}",
            WSGATE_LOG_FORMAT="text",
        )
        with serving(tmp_path, [], environ, port) as proc:
            with connect(f"ws://127.0.0.1:{port}/", open_timeout=20) as ws:
                ws.send("from env")
                assert ws.recv(timeout=20) == "from env"
            wait_for_port(admin)  # opened after the traffic port
            assert request(admin, "GET", "/healthz")[0] == 200
            assert " INFO    listening pid=" in proc.log()  # text lines, not JSON


def test_listen_from_the_environment_replaces_the_configs(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "gw.toml"
    with ws_server() as backend:
        config.write_text(
            f'[server]\nlisten = ["127.0.0.1:1"]\n[pools.app]\nbackends = ["127.0.0.1:{backend}"]\n'
        )
        environ = env(WSGATE_CONFIG=str(config), WSGATE_LISTEN=f"127.0.0.1:{port}")
        with (
            serving(tmp_path, [], environ, port),
            connect(f"ws://127.0.0.1:{port}/", open_timeout=20) as ws,
        ):
            ws.send("x")
            assert ws.recv(timeout=20) == "x"


def test_the_pid_file_and_wsgate_reload(tmp_path: Path) -> None:
    port = free_port()
    pid_file = tmp_path / "run" / "wsgate.pid"
    pid_file.parent.mkdir()
    with ws_server() as backend:
        argv = ["--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{backend}"]
        environ = env(WSGATE_PID_FILE=str(pid_file))
        with serving(tmp_path, argv, environ, port) as proc:
            assert pid_file.read_text() == f"{proc.pid}\n"
            done = subprocess.run(
                [*WSGATE, "reload"], env=environ, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
            assert f"SIGHUP sent to {proc.pid}" in done.stdout
            deadline = time.monotonic() + 20
            while not any(r["event"] in ("reload_done", "sighup_ignored") for r in records(proc)):
                assert time.monotonic() < deadline, proc.log()
                time.sleep(0.05)
            assert proc.popen.poll() is None
            proc.popen.send_signal(signal.SIGTERM)
            assert proc.popen.wait(timeout=30) == 0
        assert not pid_file.exists()  # removed at exit


# == exit statuses (docs/deploy.md) ===========================================================
def run(argv: list[str], environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WSGATE, *argv], env=environ or env(), capture_output=True, text=True, timeout=120
    )


def test_exit_statuses(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[pools.app]\nbackends = []\n")
    assert run(["serve", "--config", str(bad)]).returncode == 2
    assert run(["serve"], env(WSGATE_WORKERS="0", WSGATE_UPSTREAMS="127.0.0.1:1")).returncode == 2
    assert run(["check", str(bad)]).returncode == 2
    good = tmp_path / "good.toml"
    good.write_text('[pools.app]\nbackends = ["127.0.0.1:9001"]\n')
    assert run(["check", str(good)]).returncode == 0
    # A port in use: 1.
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        done = run(["serve", "--listen", f"127.0.0.1:{port}", "--upstream", "127.0.0.1:1"])
        assert done.returncode == 1 and "Address already in use" in done.stderr
        assert run(["demo", "--port", str(port)]).returncode == 1
    # reload: 2 without a pid file, 1 for a process that is gone.
    assert run(["reload"]).returncode == 2
    stale = tmp_path / "stale.pid"
    child = subprocess.Popen(["true"])
    child.wait()
    stale.write_text(f"{child.pid}\n")
    assert run(["reload", "--pid-file", str(stale)]).returncode == 1


def test_the_docs_list_the_exit_statuses() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text.split("## Exit status", 1)[1].split("\n## ", 1)[0]
    for command in ("serve", "check", "demo", "reload"):
        assert f"`{command}`" in section
    for code in ("0", "1", "2"):
        assert re.search(rf"\b{code}\b", section)


# == the systemd unit =========================================================================
def test_the_unit_has_what_the_gateway_relies_on() -> None:
    unit = UNIT.read_text()
    for line in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=1048576",
        "KillSignal=SIGTERM",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "User=wsgate",
    ):
        assert line in unit.splitlines(), line


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    wsgate = Path(sys.executable).parent / "wsgate"
    if not wsgate.exists():
        pytest.skip(f"no wsgate script beside {sys.executable} to stand for /usr/local/bin")
    # verify checks that ExecStart's program exists: point it at this install.
    unit = tmp_path / "wsgate.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/wsgate", str(wsgate)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wsgate.service" not in done.stderr, done.stderr  # no warning about the unit


# == the Dockerfile ===========================================================================
def test_the_dockerfile_is_slim_unprivileged_and_checks_health() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all("-slim" in line for line in froms)
    user = next(line for line in lines if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert "/healthz" in DOCKERFILE.read_text()


def container_runtime() -> str | None:
    for name in ("docker", "podman"):
        path = shutil.which(name)
        if path is None:
            continue
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            probe = subprocess.run([path, "info"], capture_output=True, timeout=20)
            if probe.returncode == 0:
                return path
    return None


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_image_builds_and_its_healthcheck_passes(tmp_path: Path) -> None:
    runtime = container_runtime()
    if runtime is None:
        pytest.skip("no container runtime answers here (docker/podman info fails)")
    tag = f"wsgate-test:{os.getpid()}"
    name = f"wsgate-test-{os.getpid()}"
    build = subprocess.run(
        [runtime, "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=1100
    )
    if build.returncode != 0 and "pip" in build.stderr and "network" in build.stderr.lower():
        pytest.skip(f"the build cannot reach the package index: {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr[-3000:]
    try:
        started = subprocess.run(
            [runtime, "run", "-d", "--name", name, "-e", "WSGATE_UPSTREAMS=127.0.0.1:9", tag],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 90
        status = ""
        while time.monotonic() < deadline:
            status = subprocess.run(
                [runtime, "inspect", "--format", "{{.State.Health.Status}}", name],
                capture_output=True, text=True, timeout=30,
            ).stdout.strip()  # fmt: skip
            if status == "healthy":
                break
            time.sleep(1)
        assert status == "healthy", subprocess.run(
            [runtime, "logs", name], capture_output=True, text=True, timeout=30
        ).stderr
        user = subprocess.run(
            [runtime, "exec", name, "id", "-u"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        assert user not in ("", "0")
    finally:
        subprocess.run([runtime, "rm", "-f", name], capture_output=True, timeout=60)
        subprocess.run([runtime, "rmi", "-f", tag], capture_output=True, timeout=60)
