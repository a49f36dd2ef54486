"""Active health checks: one probe of one backend, by kind (tcp, http, websocket)."""

from __future__ import annotations

import asyncio
import base64
import os

from wsgate.config.model import Address, HealthCheckConfig
from wsgate.protocol.handshake import accept_value
from wsgate.protocol.headers import get_one

# A masked close frame, code 1000: the polite end of a websocket check (RFC 6455 5.3).
_CLOSE_1000 = bytes((0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8))


async def run_check(
    check: HealthCheckConfig, address: Address, connect_timeout_s: float
) -> tuple[bool, str]:
    """Probe `address`; (ok, one line saying what was seen). Never raises."""
    try:
        async with asyncio.timeout(check.timeout_s):
            return await _probe(check, address)
    except TimeoutError:
        return False, f"no answer within {check.timeout_s:g} s"
    except OSError as exc:
        return False, exc.strerror or str(exc)


async def _probe(check: HealthCheckConfig, address: Address) -> tuple[bool, str]:
    reader, writer = await asyncio.open_connection(address.host, address.port)
    try:
        if check.kind == "tcp":
            return True, "connected"
        key = base64.b64encode(os.urandom(16))
        lines = [f"GET {check.path} HTTP/1.1", f"Host: {address}", "User-Agent: wsgate-health"]
        if check.kind == "websocket":
            lines += [
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key.decode()}",
                "Sec-WebSocket-Version: 13",
            ]
        else:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status != check.expect_status:
            return False, f"status {status}, expected {check.expect_status}"
        if check.kind == "websocket":
            headers = [
                (name.strip().encode(), value.strip().encode())
                for name, _, value in (line.partition(":") for line in header_lines if line)
            ]
            if get_one(headers, b"sec-websocket-accept") != accept_value(key):
                return False, "101 with a wrong Sec-WebSocket-Accept"
            writer.write(_CLOSE_1000)
        return True, f"status {status}"
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return False, "closed or garbled before a full response head"
    finally:
        writer.close()
