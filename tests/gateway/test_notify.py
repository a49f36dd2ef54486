"""The sd_notify protocol (gateway/notify.py) against AF_UNIX datagram sockets the test
makes: a path and an abstract name, as systemd's $NOTIFY_SOCKET may be either."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgate.gateway import notify


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def fields(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def test_a_message_is_key_value_lines_in_order() -> None:
    assert notify.message(READY=1, STATUS="up") == b"READY=1\nSTATUS=up\n"


def test_ready_to_a_path(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify.ready("listening on 127.0.0.1:8080")
    got = fields(sock.recv(4096))
    assert got == {
        "READY": "1",
        "STATUS": "listening on 127.0.0.1:8080",
        "MAINPID": str(os.getpid()),
    }
    assert notify.stopping("draining 3 connections")
    assert fields(sock.recv(4096)) == {"STOPPING": "1", "STATUS": "draining 3 connections"}
    assert notify.reloading("reloading")
    got = fields(sock.recv(4096))
    assert got["RELOADING"] == "1" and int(got["MONOTONIC_USEC"]) > 0


def test_an_abstract_socket() -> None:
    name = f"wsgate-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert notify.notify(b"STATUS=x\n", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"STATUS=x\n"


def test_nothing_without_systemd_or_with_a_dead_socket(tmp_path: Path) -> None:
    assert not notify.notify(b"READY=1\n", {})
    assert not notify.notify(b"READY=1\n", {"NOTIFY_SOCKET": ""})
    assert not notify.notify(b"READY=1\n", {"NOTIFY_SOCKET": str(tmp_path / "none")})
    assert not notify.notify(b"READY=1\n", {"NOTIFY_SOCKET": "vsock:2:9"})
