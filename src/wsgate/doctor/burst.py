"""--burst N: open N handshakes at once and compare them with a single one.

Overload shows here and nowhere else: a full accept backlog, a proxy out of
worker_connections or a handshake handler that serialises requests answer one client
well and a reconnect storm badly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from wsgate.doctor.observations import BurstObs, summarise_burst
from wsgate.doctor.progress import BURST, Progress
from wsgate.doctor.session import Handshake, goodbye


async def burst(
    n: int,
    open_one: Callable[[], Awaitable[Handshake]],
    single_ms: float,
    timeout_s: float,
    progress: Progress | None = None,
) -> BurstObs:
    """Start `n` handshakes together; every one is bounded by the probe's timeout.
    `progress` hears (burst, finished, n) at the start and as each one finishes."""
    finished = 0

    async def counted() -> Handshake:
        nonlocal finished
        result = await open_one()
        finished += 1
        if progress is not None:
            progress(BURST, finished, n)
        return result

    if progress is not None:
        progress(BURST, 0, n)
    start = time.monotonic()
    results = await asyncio.gather(*(counted() for _ in range(n)))
    wall_ms = (time.monotonic() - start) * 1000
    await asyncio.gather(*(goodbye(r.conn, timeout_s) for r in results if r.conn is not None))
    return summarise_burst([(r.outcome, r.ms) for r in results], single_ms, wall_ms)
