"""PacedCloser on a fake loop: each item closed at its time, a batch per BATCH_S at most,
one timer at a time; no sleeps."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any, cast

import pytest

from wsgate.gateway.pacer import PacedCloser
from wsgate.policy.pacing import BATCH_S


class FakeTimer:
    def __init__(self, at: float, callback: Callable[[], None]) -> None:
        self.at = at
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, at: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(at, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, to: float) -> None:
        """Fire the timers due by `to`, in order, moving the clock to each."""
        while True:
            due = sorted((t for t in self.pending() if t.at <= to), key=lambda t: t.at)
            if not due:
                break
            timer = due[0]
            timer.cancelled = True
            self.now = max(self.now, timer.at)
            timer.callback()
        self.now = to


def closer(
    loop: FakeLoop, times: list[float], on_done: Callable[[], None] | None = None
) -> tuple[PacedCloser[int], list[tuple[float, int]]]:
    closed: list[tuple[float, int]] = []
    paced = PacedCloser(
        cast(asyncio.AbstractEventLoop, cast(Any, loop)),
        list(range(len(times))),
        times,
        lambda item: closed.append((loop.now, item)),
        on_done,
    )
    return paced, closed


def test_each_item_is_closed_at_its_time_with_one_timer() -> None:
    loop = FakeLoop()
    done: list[float] = []
    paced, closed = closer(loop, [0.0, 1.0, 2.5], lambda: done.append(loop.now))
    paced.start()
    assert closed == [(0.0, 0)]  # due at once
    assert len(loop.pending()) == 1 and loop.pending()[0].at == 1.0
    loop.advance(1.0)
    assert closed == [(0.0, 0), (1.0, 1)]
    assert paced.remaining == 1 and not done
    loop.advance(10.0)
    assert closed[-1] == (2.5, 2)
    assert done == [2.5] and paced.done
    assert loop.pending() == []


def test_closes_closer_than_a_batch_go_together() -> None:
    loop = FakeLoop()
    times = [0.001 * i for i in range(1, 101)]  # 100 closes in 0.1 s
    paced, closed = closer(loop, times)
    paced.start()
    loop.advance(1.0)
    assert len(closed) == 100
    fired_at = sorted({at for at, _ in closed})
    # No more timers than one per BATCH_S over the span (plus the first).
    assert len(fired_at) <= 0.1 / BATCH_S + 2
    assert all(b - a >= BATCH_S - 1e-9 for a, b in itertools.pairwise(fired_at))
    assert [item for _, item in closed] == list(range(100))


def test_cancel_stops_the_rest_and_skips_on_done() -> None:
    loop = FakeLoop()
    done: list[bool] = []
    paced, closed = closer(loop, [1.0, 2.0, 3.0], lambda: done.append(True))
    paced.start()
    loop.advance(1.5)
    paced.cancel()
    loop.advance(10.0)
    assert [item for _, item in closed] == [0]
    assert done == [] and paced.remaining == 0


def test_nothing_to_close_is_done_at_start() -> None:
    loop = FakeLoop()
    done: list[bool] = []
    paced, _ = closer(loop, [], lambda: done.append(True))
    paced.start()
    assert done == [True] and loop.pending() == []


def test_one_time_per_item() -> None:
    with pytest.raises(ValueError, match="one time per item"):
        PacedCloser(cast(asyncio.AbstractEventLoop, None), [1, 2], [0.0], print)
