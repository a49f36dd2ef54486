"""Closing many connections at their planned times with one timer (the plan: policy/pacing.py).

Used by every paced close of the gateway: a drain on SIGTERM, a backend drained through the
admin API, and a backend removed by a reload. The times come from `close_times`; this class
only keeps them, in order, and closes what is due when its timer fires, a batch per
`BATCH_S` at most.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from wsgate.policy.pacing import BATCH_S

T = TypeVar("T")


class PacedCloser(Generic[T]):
    """Calls `close(item)` for each item at its time. `times` are in ascending order, one
    per item. `on_done` is called once the last item is closed (not after `cancel`)."""

    __slots__ = ("_close", "_index", "_items", "_loop", "_on_done", "_timer", "_times")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        items: Sequence[T],
        times: Sequence[float],
        close: Callable[[T], None],
        on_done: Callable[[], None] | None = None,
    ) -> None:
        if len(items) != len(times):
            raise ValueError("one time per item")
        self._loop = loop
        self._items = list(items)
        self._times = list(times)
        self._close = close
        self._on_done = on_done
        self._index = 0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._fire()

    @property
    def remaining(self) -> int:
        return len(self._items) - self._index

    @property
    def done(self) -> bool:
        return self._index >= len(self._items)

    def cancel(self) -> None:
        """No more closes; what was closed stays closed."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._index = len(self._items)
        self._on_done = None

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time()
        items, times = self._items, self._times
        while self._index < len(items) and times[self._index] <= now:
            item = items[self._index]
            self._index += 1
            self._close(item)
        if self._index < len(items):
            at = max(times[self._index], now + BATCH_S)
            self._timer = self._loop.call_at(at, self._fire)
            return
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done()
