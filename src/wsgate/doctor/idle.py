"""--idle: hold a WebSocket quiet and report if and when it is cut, and by what.

`hold` watches one connection. `bisect` finds a cut of up to several minutes without
waiting span after span in sequence: N connections open at once and each goes quiet for a
different span, then pings. A cut shows as an EOF, a reset or a close frame at the time it
happens; a silent drop (a NAT or firewall forgetting the flow) shows only as a missing pong,
so the spans bracket it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from websockets.frames import Opcode

from wsgate.doctor.observations import IdleEnd, IdleObs, IdleSpan
from wsgate.doctor.session import Conn, goodbye, ping
from wsgate.protocol.frame_relay import KEEPALIVE_PREFIX

# Frames kept on a held connection; older ones are only counted.
KEEP_FRAMES = 64


def bisect_spans(max_s: float, conns: int) -> tuple[float, ...]:
    """Evenly staggered spans up to `max_s`: (max/n, 2max/n, ..., max)."""
    conns = max(1, conns)
    return tuple(round(max_s * i / conns, 3) for i in range(1, conns + 1))


async def hold(conn: Conn, span_s: float, timeout_s: float) -> IdleSpan:
    """Send nothing for `span_s` (pings from the server are answered), then ping."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = loop.time() + span_s
    pings = keepalive = 0
    while not conn.eof and loop.time() < deadline:
        seen = len(conn.frames)
        await conn.pump(deadline)
        for frame in conn.frames[seen:]:
            if frame.opcode is Opcode.PING:
                pings += 1
                keepalive += bytes(frame.data[: len(KEEPALIVE_PREFIX)]) == KEEPALIVE_PREFIX
        # A chatty server could send for an hour: keep only what the later steps read.
        del conn.frames[:-KEEP_FRAMES]
        if conn.close_frame() is not None:
            break
    ended = time.monotonic() - start
    end = _end_of(conn)
    if end is None:
        pong = await ping(conn, timeout_s)
        if pong.ok:
            return IdleSpan(span_s, IdleEnd.SURVIVED, server_pings=pings, keepalive_pings=keepalive)
        end = _end_of(conn) or IdleEnd.SILENT
        ended = span_s
    received = conn.close_frame()
    code, reason = received if received is not None else (None, "")
    return IdleSpan(
        span_s,
        end,
        round(ended, 3),
        code,
        reason,
        server_pings=pings,
        keepalive_pings=keepalive,
    )


def _end_of(conn: Conn) -> IdleEnd | None:
    if conn.close_frame() is not None:
        return IdleEnd.CLOSE_FRAME
    if conn.reset:
        return IdleEnd.RESET
    if conn.eof:
        return IdleEnd.EOF
    return None


async def bisect(
    open_conn: Callable[[], Awaitable[Conn | None]],
    max_s: float,
    conns: int,
    timeout_s: float,
) -> IdleObs:
    """Hold `conns` connections quiet for staggered spans at once; stop early once a cut
    is bracketed (every shorter span has finished)."""
    start = time.monotonic()
    spans = bisect_spans(max_s, conns)

    async def one(span: float) -> IdleSpan:
        conn = await open_conn()
        if conn is None:
            return IdleSpan(span, IdleEnd.FAILED, error="handshake failed")
        try:
            result = await hold(conn, span, timeout_s)
            if not result.cut:  # a cut connection has nobody left to say goodbye to
                await goodbye(conn, timeout_s)
            return result
        finally:
            conn.abort()  # also when cancelled: no polite close for a span not needed

    tasks = {asyncio.ensure_future(one(span)): span for span in spans}
    results: list[IdleSpan] = []
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            results.extend(task.result() for task in done)
            cuts = [r.span_s for r in results if r.cut]
            if cuts and all(tasks[t] > min(cuts) for t in pending):
                break  # every longer span would only confirm the cut
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    results.sort(key=lambda r: r.span_s)
    return IdleObs(max_s, tuple(results), bisect=True, ms=(time.monotonic() - start) * 1000)


async def single(conn: Conn, span_s: float, timeout_s: float) -> IdleObs:
    """--idle without bisect: hold the probe's own connection quiet."""
    start = time.monotonic()
    result = await hold(conn, span_s, timeout_s)
    return IdleObs(span_s, (result,), ms=(time.monotonic() - start) * 1000)
