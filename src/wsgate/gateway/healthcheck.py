"""Active health checks: one probe of one backend, by kind (tcp, http, websocket)."""

from __future__ import annotations

import asyncio
import os
import ssl

from wsgate.config.model import Address, HealthCheckConfig
from wsgate.gateway.listeners import os_error_reason
from wsgate.protocol.client_handshake import (
    ResponseHead,
    build_request,
    check_101,
    make_key,
    parse_response_head,
)
from wsgate.protocol.errors import ProtocolError

# A masked close frame, code 1000: the polite end of a websocket check (RFC 6455 5.3).
_CLOSE_1000 = bytes((0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8))
USER_AGENT = "wsgate-health"


async def run_check(
    check: HealthCheckConfig,
    address: Address,
    connect_timeout_s: float,
    *,
    tls: ssl.SSLContext | None = None,
    server_hostname: str = "",
) -> tuple[bool, str]:
    """Probe `address` (over TLS with `tls`: a wss:// backend); (ok, one line saying
    what was seen). Never raises."""
    try:
        async with asyncio.timeout(check.timeout_s):
            return await _probe(check, address, tls, server_hostname or address.host)
    except TimeoutError:
        return False, f"no answer within {check.timeout_s:g} s"
    except OSError as exc:
        return False, os_error_reason(exc)


async def _probe(
    check: HealthCheckConfig, address: Address, tls: ssl.SSLContext | None, server_hostname: str
) -> tuple[bool, str]:
    if tls is None:
        reader, writer = await asyncio.open_connection(address.host, address.port)
    else:
        reader, writer = await asyncio.open_connection(
            address.host, address.port, ssl=tls, server_hostname=server_hostname
        )
    try:
        if check.kind == "tcp":
            return True, "connected"
        key = make_key(os.urandom(16))  # the websocket kind's
        if check.kind == "websocket":
            # ValueError for a path with a line break in it: refused, not sent.
            request = build_request(check.path, str(address), key, user_agent=USER_AGENT)
        else:
            request = (
                f"GET {check.path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: {USER_AGENT}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        writer.write(request)
        head = await _read_head(reader)
        if head is None:
            return False, "closed before a full response head"
        if head.status != check.expect_status:
            return False, f"status {head.status}, expected {check.expect_status}"
        if check.kind == "websocket":
            check_101(key, head)
            writer.write(_CLOSE_1000)
        return True, f"status {head.status}"
    except ProtocolError as exc:  # not HTTP, a head too large, or a 101 a client would fail
        return False, exc.reason
    except ValueError as exc:
        return False, f"cannot send the check: {exc}"
    finally:
        writer.close()


async def _read_head(reader: asyncio.StreamReader) -> ResponseHead | None:
    """The answer's head, or None when the backend closes before it ends."""
    data = b""
    while (head := parse_response_head(data)) is None:
        chunk = await reader.read(65536)
        if not chunk:
            return None
        data += chunk
    return head
