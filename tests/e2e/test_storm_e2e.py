"""End-to-end: `wsgate storm` as a real process against real servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tests.support.backends import ws_server
from tests.support.procs import free_port
from wsgate.storm import plan

pytestmark = pytest.mark.e2e


def storm(*args: str, timeout_s: float = 180.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsgate", "storm", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def storm_json(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "result.json"
    done = storm(*args, "--json", str(out))
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_small_burst_with_echo_messages(tmp_path: Path) -> None:
    with ws_server() as port:
        result = storm_json(
            tmp_path,
            f"ws://127.0.0.1:{port}/chat?room=1",
            "--burst",
            "50",
            "--workers",
            "2",
            "--messages",
            "2",
            "--size",
            "100",
            "--timeout",
            "60s",
        )
    s = result["summary"]
    assert s["outcomes"] == {"101": 50}
    assert s["started"] == 50
    assert s["handshake_ms"]["count"] == 50
    assert s["handshake_ms"]["p50"] > 0
    assert s["rtt_ms"]["count"] == 100
    assert s["session_errors"] == {}
    assert s["time_to_last_success_s"] is not None
    assert sum(s["series"]["outcomes"]["101"]) == 50
    assert len(result["client"]["workers"]) == 2
    assert result["config"]["arrival"] == {"mode": "burst", "count": 50}


def test_closed_loop_is_bounded_by_its_count(tmp_path: Path) -> None:
    with ws_server() as port:
        result = storm_json(
            tmp_path,
            f"ws://127.0.0.1:{port}/",
            "--concurrency",
            "4",
            "--count",
            "40",
            "--duration",
            "60s",
            "--workers",
            "2",
        )
    assert result["summary"]["outcomes"] == {"101": 40}


def test_rate_schedule_and_request_headers_reach_the_server(tmp_path: Path) -> None:
    seen: list[tuple[str, str | None, str | None, str | None]] = []

    def record(conn: ServerConnection, request: Request) -> None:
        h = request.headers
        seen.append((request.path, h.get("Origin"), h.get("X-Test"), h.get("Host")))

    with ws_server(process_request=record, subprotocols=["chat.v1"]) as port:
        result = storm_json(
            tmp_path,
            f"ws://localhost:{port}/p?q=1",
            "--rate",
            "20/s",
            "--duration",
            "1s",
            "--origin",
            "http://app.test",
            "-H",
            "X-Test: yes",
            "--subprotocol",
            "chat.v1",
        )
    assert result["summary"]["outcomes"] == {"101": 20}
    assert len(seen) == 20
    assert set(seen) == {("/p?q=1", "http://app.test", "yes", f"localhost:{port}")}


def test_status_and_wsgate_cause_are_counted(tmp_path: Path) -> None:
    def reject(conn: ServerConnection, request: Request) -> Response:
        response = conn.respond(HTTPStatus.BAD_GATEWAY, "no backend\n")
        response.headers["X-Wsgate-Cause"] = "upstream_connect_refused"
        return response

    with ws_server(process_request=reject) as port:
        result = storm_json(tmp_path, f"ws://127.0.0.1:{port}/", "--burst", "10")
    assert result["summary"]["outcomes"] == {"502 upstream_connect_refused": 10}
    assert result["summary"]["ok"] == 0


def test_retry_after_values_are_counted(tmp_path: Path) -> None:
    def busy(conn: ServerConnection, request: Request) -> Response:
        response = conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        response.headers["Retry-After"] = "7"
        return response

    with ws_server(process_request=busy) as port:
        result = storm_json(tmp_path, f"ws://127.0.0.1:{port}/", "--burst", "10")
    assert result["summary"]["outcomes"] == {"503": 10}
    told = result["summary"]["retry_after_s"]
    assert told["count"] == 10 and told["min"] == 7 and told["max"] == 7, told


def test_refused_when_nothing_listens(tmp_path: Path) -> None:
    result = storm_json(tmp_path, f"ws://127.0.0.1:{free_port()}/", "--burst", "5")
    assert result["summary"]["outcomes"] == {"refused": 5}


@contextlib.contextmanager
def raw_server(mode: str) -> Iterator[int]:
    """A TCP listener that never answers ("silent"), resets ("reset"), closes ("close") or
    answers something that is not HTTP ("garbage") after reading the request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if mode == "reset":
                conn.recv(4096)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif mode == "close":
                conn.recv(4096)
                conn.close()
            elif mode == "garbage":
                conn.recv(4096)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        for conn in held:
            conn.close()
        listener.close()


def test_timeout_when_the_server_never_answers(tmp_path: Path) -> None:
    with raw_server("silent") as port:
        result = storm_json(tmp_path, f"ws://127.0.0.1:{port}/", "--burst", "3", "--timeout", "1s")
    assert result["summary"]["outcomes"] == {"timeout": 3}


def test_reset_when_the_server_aborts(tmp_path: Path) -> None:
    with raw_server("reset") as port:
        result = storm_json(tmp_path, f"ws://127.0.0.1:{port}/", "--burst", "3", "--timeout", "20s")
    assert result["summary"]["outcomes"] == {"reset": 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ws://10.1.2.3:80/", "--burst", "1"], "refusing to storm 10.1.2.3"),
        (["ws://example.com/", "--burst", "1"], "refusing to storm example.com"),
        (["http://127.0.0.1:1/", "--burst", "1"], "must start with ws://"),
        (["ws://127.0.0.1:1/"], "choose one of --burst"),
        (["ws://127.0.0.1:1/", "--rate", "fast"], "not a rate"),
        (["ws://127.0.0.1:1/", "--burst", "0"], "burst must be between"),
        (["ws://127.0.0.1:1/", "--burst", "1", "--workers", "0"], "--workers must be"),
        (["ws://127.0.0.1:1/", "--burst", "1", "-H", "nocolon"], "not a header"),
        (["--compare", "/nonexistent/a.json", "/nonexistent/b.json"], "cannot read"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(args: list[str], message: str) -> None:
    done = storm(*args, timeout_s=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_several_urls_share_the_storm_round_robin(tmp_path: Path) -> None:
    counts = {"a": 0, "b": 0}

    def counter(name: str) -> Any:
        def count(conn: ServerConnection, request: Request) -> None:
            counts[name] += 1

        return count

    with ws_server(process_request=counter("a")) as a, ws_server(process_request=counter("b")) as b:
        result = storm_json(
            tmp_path,
            f"ws://127.0.0.1:{a}/",
            f"ws://127.0.0.1:{b}/",
            "--burst",
            "20",
            "--workers",
            "3",
        )
    assert result["summary"]["outcomes"] == {"101": 20}
    assert counts == {"a": 10, "b": 10}


@pytest.mark.parametrize(("mode", "outcome"), [("close", "closed"), ("garbage", "bad_response")])
def test_close_and_garbage_before_a_response(tmp_path: Path, mode: str, outcome: str) -> None:
    with raw_server(mode) as port:
        result = storm_json(tmp_path, f"ws://127.0.0.1:{port}/", "--burst", "3", "--timeout", "20s")
    assert result["summary"]["outcomes"] == {outcome: 3}


def test_ramp_with_paced_messages_and_hold(tmp_path: Path) -> None:
    with ws_server() as port:
        result = storm_json(
            tmp_path,
            f"ws://127.0.0.1:{port}/",
            "--ramp", "10:30", "--duration", "1s",
            "--messages", "2", "--interval", "100ms", "--hold", "300ms",
            "--workers", "2", "--spacing", "poisson", "--seed", "5",
        )  # fmt: skip
    s = result["summary"]
    assert s["started"] == s["ok"] == len(plan.build(plan.Ramp(10.0, 30.0, 1.0), 5, "poisson"))
    assert s["rtt_ms"]["count"] == 2 * s["ok"]
    assert s["session_errors"] == {}
    # Each connection lived at least 100 ms between its messages plus the 300 ms hold.
    assert s["elapsed_s"] >= 0.4
    assert result["config"]["arrival"]["mode"] == "ramp"


def test_hold_reports_a_server_that_closes_early(tmp_path: Path) -> None:
    async def close_soon(conn: ServerConnection) -> None:
        await conn.close()

    with ws_server(close_soon) as port:
        result = storm_json(tmp_path, f"ws://127.0.0.1:{port}/", "--burst", "5", "--hold", "5s")
    assert result["summary"]["outcomes"] == {"101": 5}
    assert result["summary"]["session_errors"] == {"closed during hold": 5}


def test_a_burst_beyond_the_open_file_limit_is_refused_up_front() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= plan.MAX_CONNECTIONS:
        pytest.skip("no open-file limit below the storm's own bound")
    done = storm(f"ws://127.0.0.1:{free_port()}/", "--burst", str(soft), timeout_s=60)
    assert done.returncode == 2
    assert "may open only" in done.stderr and "--workers" in done.stderr


def test_compare_refuses_a_file_that_is_not_a_storm_result(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"kind": "something else"}')
    done = storm("--compare", str(other), str(other), timeout_s=60)
    assert done.returncode == 2
    assert "is not a wsgate storm result" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_stops_the_storm_and_keeps_what_it_measured(tmp_path: Path) -> None:
    import os
    import signal
    import time

    seen: list[int] = []

    def count(conn: ServerConnection, request: Request) -> None:
        seen.append(1)

    out = tmp_path / "partial.json"
    with ws_server(process_request=count) as port:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "wsgate", "storm", "--quiet", f"ws://127.0.0.1:{port}/",
                "--concurrency", "4", "--duration", "300s", "--workers", "2", "--json", str(out),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while len(seen) < 20 and time.monotonic() < deadline:
                time.sleep(0.1)  # wait until the storm is under way, however slow the box
            assert len(seen) >= 20
            os.kill(proc.pid, signal.SIGINT)
            _, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    result = json.loads(out.read_text())
    assert result["interrupted"] is True
    assert result["summary"]["ok"] > 0
    assert result["summary"]["elapsed_s"] < 300
    assert all(worker["stopped_early"] for worker in result["client"]["workers"])
