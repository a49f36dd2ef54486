"""Ending the background tasks a gateway part keeps (health checks, spare connections)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel every task, then wait for each to end; an error a task ended with is
    raised here, its cancellation is not. The caller's own cancellation, while it waits,
    is raised on."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        try:
            await task
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if caller is not None and caller.cancelling():
                raise
