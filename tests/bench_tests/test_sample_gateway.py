"""The py-spy sample summary of bench/sample_gateway.py, fed collapsed stacks."""

from __future__ import annotations

from pathlib import Path

from bench.sample_gateway import shares

LOOP = "<module> (wsgate/__main__.py:1);run (uvloop/__init__.py:38);0x7f00 (libuv.so)"
RAW = "\n".join(
    [
        f"{LOOP};Runner.run (asyncio/runners.py:86);"
        "ClientConnection.data_received (wsgate/gateway/downstream.py:100);write (libc.so.6) 30",
        f"{LOOP};BackendChoice._connect (wsgate/gateway/dispatch.py:163);connect (libc.so.6) 50",
        "<module> (wsgate/__main__.py:1);run (uvloop/__init__.py:38);epoll_pwait (libc.so.6) 20",
        "not a stack line",
    ]
)


def test_shares_by_leaf_and_by_first_own_callback(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(RAW)
    leaf, top, total = shares(raw)
    assert total == 100
    assert leaf == {"write": 30, "connect": 50, "epoll_pwait": 20}
    # Native frames and the interpreter's own frames are skipped to find the callback.
    assert top == {
        "ClientConnection.data_received": 30,
        "BackendChoice._connect": 50,
        "epoll_pwait": 20,
    }
