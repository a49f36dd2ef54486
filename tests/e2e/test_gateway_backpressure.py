"""A client that stops reading must not make the gateway buffer what the backend sends."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from websockets.asyncio.server import ServerConnection

from tests.support.backends import ws_server
from tests.support.gateway import gateway
from tests.support.raw import read_head, upgrade_request

MIB = 1024 * 1024
FLOOD_TOTAL = 512 * MIB  # what the backend would send if nothing held it back
# The bound this test states: the gateway's resident memory may grow by at most this much
# while the backend floods a client that reads nothing (the write buffer's high-water
# mark is 256 KiB per direction; the rest is the kernel's socket buffers, not ours).
RSS_GROWTH_BOUND = 32 * MIB


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_stalled_client_bounds_gateway_memory(tmp_path: Path) -> None:
    sent = [0]

    async def flood(conn: ServerConnection) -> None:
        chunk = b"\x00" * MIB
        while sent[0] < FLOOD_TOTAL:
            await conn.send(chunk)
            sent[0] += len(chunk)

    with (
        ws_server(flood, compression=None, write_limit=64 * 1024) as backend,
        gateway(tmp_path, upstreams=[backend]) as gw,
    ):
        before = rss_bytes(gw.proc.pid)
        with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(upgrade_request())
            assert read_head(sock).startswith(b"HTTP/1.1 101")
            # Stop reading. Wait until the backend is stuck (its count stops moving).
            deadline = time.monotonic() + 60
            last = -1
            while time.monotonic() < deadline:
                time.sleep(1.0)
                if sent[0] == last:
                    break
                last = sent[0]
            growth = rss_bytes(gw.proc.pid) - before
            print(f"sent={sent[0] / MIB:.1f} MiB growth={growth / MIB:.1f} MiB")
            assert sent[0] < FLOOD_TOTAL // 4, f"backend was not held back: sent {sent[0]}"
            assert growth < RSS_GROWTH_BOUND, f"gateway grew by {growth / MIB:.1f} MiB"
            # Now read: the flood resumes, proving the pause was backpressure, not a stall.
            stuck_at = sent[0]
            sock.settimeout(20)
            received = 0
            while received < 64 * MIB:
                data = sock.recv(1 << 20)
                assert data
                received += len(data)
            assert sent[0] > stuck_at
