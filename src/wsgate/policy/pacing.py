"""When to close each of many tunnels that must go, so that their clients come back spread out.

A gateway that closes every tunnel in the same instant (a deploy, a removed backend) sends
every client back in the same second: the reconnect storm it exists to prevent. So closes
are paced: either spread over a window, or made at a fixed rate. Each close falls at a
random point of its own slot (stratified jitter): no two clients are told to go at the same
instant, and yet no second holds more than its share (window / count) plus one.

Pure: `now` and a random generator in, times out. The adapter (gateway/pacer.py) closes
each connection at its time and what is left at the drain's deadline with 1001.
"""

from __future__ import annotations

import random

# Closes closer together than this are made in one batch by the adapter: a timer per
# close would cost more than it spreads.
BATCH_S = 0.05


def close_times(
    count: int,
    start: float,
    *,
    window_s: float,
    rng: random.Random,
    # Last: mypyc's build fails on a keyword-only parameter without a default after one with.
    rate_per_s: float = 0.0,
) -> list[float]:
    """The times, in order, at which to close `count` connections from `start` on.

    With `rate_per_s` > 0: one slot of 1 / rate_per_s per close, so the last falls about
    count / rate_per_s after `start` (past a deadline, whatever the caller does then).
    Otherwise the `window_s` is cut into `count` equal slots. Each close is at a uniformly
    random point of its slot. A window of 0 (and no rate): all at `start`."""
    if count <= 0:
        return []
    if rate_per_s > 0:
        slot = 1.0 / rate_per_s
    elif window_s > 0:
        slot = window_s / count
    else:
        return [start] * count
    return [start + (index + rng.random()) * slot for index in range(count)]


def drain_window(grace_s: float, window_s: float, timeout_s: float) -> tuple[float, float]:
    """The grace and the closing window that fit in a drain of `timeout_s`: the grace
    first (cut to the timeout), then the window (cut to what is left). What a drain then
    has not closed by `timeout_s` is closed at once."""
    grace = min(max(0.0, grace_s), max(0.0, timeout_s))
    return grace, min(max(0.0, window_s), max(0.0, timeout_s - grace))
