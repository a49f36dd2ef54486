"""Zero-downtime reload (SIGHUP) with real processes: 1,000 tunnels open and a storm of
new handshakes running (`wsgate storm` in its own process) while a config that adds one
backend and removes another is applied: no tunnel to the kept backend is closed, every
handshake of the storm gets its 101 (no 502, no reset), the removed backend's tunnels are
closed with 1012 at a pace, new handshakes go to the new backends. Then a config with an
error: logged, nothing changes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.backends import named_backend
from tests.support.gateway import RunningGateway, gateway
from tests.support.procs import free_port
from tests.support.tunnels import close_all, open_tunnel, open_tunnels, per_second

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TUNNELS = 1000
WINDOW_S = 4.0


def pool_config(port: int, backends: list[int], *, extra: str = "") -> str:
    listed = ", ".join(f'"127.0.0.1:{b}"' for b in backends)
    return f"""
[server]
listen = ["127.0.0.1:{port}"]
access_log = false
drain_window_s = {WINDOW_S}
[pools.app]
backends = [{listed}]
balance = "round_robin"
queue_timeout_s = 60
{extra}
[pools.app.health]
kind = "none"
"""


def records(gw: RunningGateway) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gw.log_lines() if line.startswith("{")]


async def wait_for_event(
    gw: RunningGateway, event: str, count: int, timeout_s: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = [r for r in records(gw) if r["event"] == event]
        if len(found) >= count:
            return found[count - 1]
        assert time.monotonic() < deadline, f"no {event} #{count}: {gw.log_lines()[-10:]}"
        await asyncio.sleep(0.05)


def test_sighup_adds_and_removes_a_backend_under_1000_tunnels_and_a_storm(
    tmp_path: Path,
) -> None:
    port = free_port()
    a, b, c = free_port(), free_port(), free_port()
    config_path = tmp_path / f"wsgate-{port}.toml"
    with (
        named_backend(tmp_path, a, "A"),
        named_backend(tmp_path, b, "B"),
        named_backend(tmp_path, c, "C"),
        gateway(tmp_path, config=pool_config(port, [a, b]), port=port) as gw,
    ):
        result = tmp_path / "storm.json"

        async def main() -> dict[str, Any]:
            tunnels = await open_tunnels(f"{gw.url}/", TUNNELS)
            by_backend = {name: [t for t in tunnels if t.backend == name] for name in "AB"}
            storm = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "wsgate", "storm", f"{gw.url}/", "--quiet",
                "--rate", "40", "--duration", "8s", "--json", str(result),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                await asyncio.sleep(2.0)  # the storm runs
                config_path.write_text(pool_config(port, [a, c]))
                reload_at = time.monotonic()
                os.kill(gw.proc.pid, signal.SIGHUP)
                done = await wait_for_event(gw, "reload_done", 1)
                fresh = [await open_tunnel(f"{gw.url}/") for _ in range(6)]
                await asyncio.sleep(WINDOW_S + 2.0)  # the removed backend's pace
                # A config with an error: logged, nothing changes.
                config_path.write_text(pool_config(port, [a, c], extra="queue_size = -1\n"))
                os.kill(gw.proc.pid, signal.SIGHUP)
                failed = await wait_for_event(gw, "reload_failed", 1)
                after_error = [await open_tunnel(f"{gw.url}/") for _ in range(4)]
                echoes = [await t.echo("still here") for t in after_error]
                _, storm_err = await asyncio.wait_for(storm.communicate(), 120)
            finally:
                if storm.returncode is None:
                    storm.kill()
                    await storm.wait()
            closed_a = [t for t in by_backend["A"] if t.closed_at is not None]
            closes_b = [(t.closed_at, t.code) for t in by_backend["B"]]
            out = {
                "counts": {k: len(v) for k, v in by_backend.items()},
                "closed_a": len(closed_a),
                "closes_b": closes_b,
                "reload_at": reload_at,
                "done": done,
                "fresh": [t.backend for t in fresh],
                "failed": failed,
                "after_error": [t.backend for t in after_error],
                "echoes": echoes,
                "storm_rc": storm.returncode,
                "storm_err": storm_err.decode(errors="replace"),
            }
            await close_all(tunnels + fresh + after_error)
            return out

        out = asyncio.run(main())
        storm_result = json.loads(result.read_text())

    # Round robin split the 1,000 tunnels between A and B (about evenly).
    assert out["counts"]["A"] + out["counts"]["B"] == TUNNELS
    assert min(out["counts"].values()) >= 0.4 * TUNNELS, out["counts"]
    done = out["done"]
    assert done["backends_added"] == [f"app/127.0.0.1:{c}"]
    assert done["backends_removed"] == [f"app/127.0.0.1:{b}"]
    assert done["tunnels_closing"] == out["counts"]["B"]
    # None of the tunnels to the kept backend was closed.
    assert out["closed_a"] == 0
    # The removed backend's were, each with a close frame 1012, over the window.
    assert all(code == 1012 for _, code in out["closes_b"]), out["closes_b"][:5]
    times = sorted(at for at, _ in out["closes_b"])
    assert times[-1] - out["reload_at"] < WINDOW_S + 2.0
    counts = per_second(times, out["reload_at"])
    assert max(counts.values()) <= 0.4 * len(times), counts
    # New handshakes went to the new backends at once, never to the removed one.
    assert set(out["fresh"]) <= {"A", "C"} and "C" in out["fresh"]
    # Every handshake of the storm got its 101: no 502, no reset.
    assert out["storm_rc"] == 0, out["storm_err"]
    outcomes = storm_result["summary"]["outcomes"]
    assert set(outcomes) == {"101"}, outcomes
    assert outcomes["101"] >= 300
    # The config with an error: logged, and the gateway went on with the last good one.
    assert "pools.app.queue_size: expected an integer >= 0" in out["failed"]["error"]
    assert out["failed"]["level"] == "warning"
    assert set(out["after_error"]) <= {"A", "C"} and out["echoes"] == ["still here"] * 4
