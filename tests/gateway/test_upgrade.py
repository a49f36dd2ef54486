"""The successor's side of a binary upgrade (gateway/upgrade.py): the inherited listening
sockets read from the environment, which is then cleared."""

from __future__ import annotations

import json
import os
import socket

from wsgate.gateway.upgrade import INHERIT_ENV, READY_ENV, take_inherited


def test_the_inherited_sockets_by_listener_key() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    fd = os.dup(listener.fileno())
    port = listener.getsockname()[1]
    env = {INHERIT_ENV: json.dumps({f"127.0.0.1 {port} 1": fd}), READY_ENV: "7", "X": "y"}
    sockets, ready = take_inherited(env)
    try:
        assert list(sockets) == [("127.0.0.1", port, True)]
        assert sockets["127.0.0.1", port, True].getsockname() == listener.getsockname()
        assert ready == 7
        assert env == {"X": "y"}  # no later child inherits them
    finally:
        for sock in sockets.values():
            sock.close()
        listener.close()


def test_nothing_inherited_or_garbage() -> None:
    assert take_inherited({}) == ({}, None)
    assert take_inherited({INHERIT_ENV: "not json", READY_ENV: "x"}) == ({}, None)
