"""Binary upgrade with two real processes: `wsgate upgrade` (SIGUSR2) while a storm of
handshakes runs through the gateway and tunnels are open. The old process starts its
successor with its listening sockets, the successor listens on them and takes the pid
file, the old one stops accepting and closes its tunnels with 1012 at a pace: every
handshake of the storm gets 101 (or 503 with Retry-After), none is refused or reset."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.backends import named_backend
from tests.support.procs import free_port, start_process, wait_for_port
from tests.support.tunnels import close_all, open_tunnel, open_tunnels, wait_closed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WSGATE = [sys.executable, "-m", "wsgate"]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def records(log: Path) -> list[dict[str, Any]]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_an_upgrade_under_a_storm_loses_no_connection(tmp_path: Path) -> None:
    port, backend = free_port(), free_port()
    pid_file = tmp_path / "wsgate.pid"
    config = tmp_path / "gw.toml"
    config.write_text(
        f"""
[server]
listen = ["127.0.0.1:{port}"]
access_log = false
drain_window_s = 2
[pools.app]
backends = ["127.0.0.1:{backend}"]
[pools.app.health]
kind = "none"
"""
    )
    log = tmp_path / "gateway.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSGATE_", "NOTIFY_"))}
    # systemd's side: the old gateway must name its successor the main process.
    notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_sock.bind(str(tmp_path / "notify.sock"))
    notify_sock.settimeout(0.2)
    result = tmp_path / "storm.json"
    successor: int | None = None
    with named_backend(tmp_path, backend, "A"):
        old = start_process(
            [*WSGATE, "serve", "--config", str(config), "--pid-file", str(pid_file)],
            log,
            {**env, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
        )
        try:
            wait_for_port(port)
            url = f"ws://127.0.0.1:{port}/"

            async def main() -> dict[str, Any]:
                nonlocal successor
                tunnels = await open_tunnels(url, 50)
                storm = await asyncio.create_subprocess_exec(
                    *WSGATE, "storm", url, "--quiet", "--rate", "60", "--duration", "6s",
                    "--json", str(result),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                try:
                    await asyncio.sleep(1.5)
                    upgrade = await asyncio.create_subprocess_exec(
                        *WSGATE, "upgrade", "--pid-file", str(pid_file), env=env,
                        stdout=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                    said, _ = await upgrade.communicate()
                    assert upgrade.returncode == 0, said
                    deadline = time.monotonic() + 30
                    while pid_file.read_text().strip() in ("", str(old.pid)):
                        assert time.monotonic() < deadline, log.read_text()
                        await asyncio.sleep(0.05)
                    successor = int(pid_file.read_text())
                    await wait_closed(tunnels, timeout_s=30)
                    fresh = await open_tunnel(url)
                    echo = await fresh.echo("after the upgrade")
                    _, storm_err = await asyncio.wait_for(storm.communicate(), 120)
                finally:
                    if storm.returncode is None:
                        storm.kill()
                        await storm.wait()
                codes = [t.code for t in tunnels]
                await close_all([*tunnels, fresh])
                return {"codes": codes, "echo": echo, "storm_err": storm_err.decode()}

            out = asyncio.run(main())
            assert old.popen.wait(timeout=30) == 0  # the old one drained and left
        finally:
            old.stop()
            if successor is not None and alive(successor):
                os.kill(successor, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while alive(successor) and time.monotonic() < deadline:
                    time.sleep(0.1)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(successor, signal.SIGKILL)

    assert successor is not None and successor != old.pid
    assert out["codes"] == [1012] * 50  # the old gateway's tunnels: closed, 1012
    assert out["echo"] == "after the upgrade"  # the successor serves
    outcomes = json.loads(result.read_text())["summary"]["outcomes"]
    assert set(outcomes) <= {"101", "503 shutting_down"}, outcomes
    assert outcomes.get("101", 0) >= 300, outcomes
    found = records(log)
    handover = next(r for r in found if r["event"] == "upgrade_handover")
    assert handover["pid"] == old.pid and handover["new_pid"] == successor
    listening = [r for r in found if r["event"] == "listening"]
    assert [r["pid"] for r in listening] == [old.pid, successor]
    assert any(r["event"] == "stopped" and r["pid"] == old.pid for r in found)
    assert not pid_file.exists()  # the successor removed it when it stopped
    said = []
    with contextlib.suppress(TimeoutError):
        while True:
            said.append(
                dict(line.split("=", 1) for line in notify_sock.recv(4096).decode().splitlines())
            )
    notify_sock.close()
    handed = [m for m in said if m.get("MAINPID") == str(successor) and "READY" not in m]
    assert handed and handed[0]["STATUS"] == f"handed over to {successor}", said
