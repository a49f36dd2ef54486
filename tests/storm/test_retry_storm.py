"""`wsgate storm --client naive|jitter|wsgate` as a real process against a server on
127.0.0.1 that turns the first handshakes away: ten with 503 + Retry-After, ten with the
gateway's overload answer (a 101 and a close 1013 "retry-after=1; ..." in one write);
and a reconnect storm whose first connections are closed with 1012 during their hold."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.raw import raw_server, read_head
from wsgate.protocol.close_reason import format_close_reason
from wsgate.protocol.frames import close_frame
from wsgate.protocol.handshake import accept_value

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REFUSED_503 = 10
CLOSED_1013 = 10
CLIENTS = 20


def switching(head: bytes) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_value(key) + b"\r\n\r\n"
    )


def until_client_closes(conn: socket.socket) -> None:
    """Read until the client's close frame (or its end), answer it, and hang up."""
    with contextlib.suppress(OSError):
        conn.recv(4096)
        conn.sendall(close_frame(1000))
    conn.close()


@contextlib.contextmanager
def counting_server(answer: Callable[[int, socket.socket, bytes], None]) -> Iterator[int]:
    """A raw server that numbers handshakes from 1 and lets `answer` reply to each."""
    numbers = itertools.count(1)
    lock = threading.Lock()

    def behaviour(conn: socket.socket) -> None:
        conn.settimeout(30)
        head = read_head(conn)
        with lock:
            number = next(numbers)
        answer(number, conn, head)

    with raw_server(behaviour, backlog=64) as port:
        yield port


def overloaded_at_first(number: int, conn: socket.socket, head: bytes) -> None:
    if number <= REFUSED_503:
        conn.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        conn.close()
    elif number <= REFUSED_503 + CLOSED_1013:
        reason = format_close_reason(1, "overloaded_queue_full")
        conn.sendall(switching(head) + close_frame(1013, reason))
        until_client_closes(conn)
    else:
        conn.sendall(switching(head))
        until_client_closes(conn)


def storm(tmp_path: Path, port: int, *args: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsgate",
            "storm",
            "--quiet",
            f"ws://127.0.0.1:{port}/",
            "--timeout",
            "30s",
            "--json",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(out.read_text())
    return result, done.stdout


@pytest.mark.parametrize("mode", ["naive", "jitter", "wsgate"])
def test_every_client_connects_and_each_refusal_is_one_failed_attempt(
    tmp_path: Path, mode: str
) -> None:
    with counting_server(overloaded_at_first) as port:
        result, text = storm(tmp_path, port, "--burst", str(CLIENTS), "--client", mode)
    retry = result["retry"]
    assert retry["mode"] == mode
    assert (retry["clients"], retry["connected"], retry["gave_up"]) == (CLIENTS, CLIENTS, 0)
    assert retry["time_until_all_connected_s"] is not None
    # Each turned-away handshake is one failed attempt, by its cause, whatever the policy.
    assert retry["failures_by_cause"] == {"http_503": REFUSED_503, "close_1013": CLOSED_1013}
    assert retry["attempts"] == CLIENTS + REFUSED_503 + CLOSED_1013
    assert result["summary"]["outcomes"]["101 closed 1013"] == CLOSED_1013
    assert result["config"]["client_mode"] == mode
    assert "time until all connected" in text
    assert "failed attempts per client max" in text
    if mode == "wsgate":
        # Told to wait a second, the turned-away clients waited: a floor, not a speed.
        assert retry["time_to_connected_s"]["max"] >= 1.0


def test_a_reconnect_storm_after_1012_during_the_hold(tmp_path: Path) -> None:
    def restart_first_ten(number: int, conn: socket.socket, head: bytes) -> None:
        conn.sendall(switching(head))
        if number <= CLIENTS // 2:
            threading.Event().wait(0.3)
            reason = format_close_reason(1, "shutting_down")
            with contextlib.suppress(OSError):
                conn.sendall(close_frame(1012, reason))
        until_client_closes(conn)

    with counting_server(restart_first_ten) as port:
        result, _ = storm(
            tmp_path, port, "--burst", str(CLIENTS // 2), "--hold", "3s", "--client", "wsgate"
        )
    retry = result["retry"]
    assert (retry["connected"], retry["reconnects"]) == (CLIENTS // 2, CLIENTS // 2)
    assert retry["failures_by_cause"] == {"close_1012": CLIENTS // 2}
    # The reconnections came after the hint (1 s after the close at 0.3 s).
    assert retry["last_connected_s"] >= 1.3


def test_naive_clients_give_up_after_max_attempts(tmp_path: Path) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # bound, not listening: connects are refused
        result, text = storm(
            tmp_path, port, "--burst", "5", "--client", "naive", "--max-attempts", "4"
        )
    retry = result["retry"]
    assert (retry["connected"], retry["gave_up"], retry["attempts"]) == (0, 5, 20)
    assert retry["failures_by_cause"] == {"unreachable_refused": 20}
    assert retry["time_until_all_connected_s"] is None
    assert "never (5 missing)" in text


def test_without_client_the_storm_tries_once(tmp_path: Path) -> None:
    with counting_server(overloaded_at_first) as port:
        result, _ = storm(tmp_path, port, "--burst", "5")
    assert result["retry"] is None
    assert result["summary"]["outcomes"] == {"503": 5}
