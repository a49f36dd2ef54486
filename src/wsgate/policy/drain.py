"""How fast a pool's wait queue drains, and what follows from it.

Two decisions use the measured rate. A handshake that would still be waiting when its
queue timeout runs out is turned away now rather than after the whole timeout (`beyond_deadline`):
either way it gets a 503, but now it learns it at once. And a fixed Retry-After sends every
rejected client of a storm back within the same few seconds, into a queue that is still
full; telling each instead to come back at its own turn after the line ahead of them
(queue length / completions per second, then one per 1 / rate in the order they were
told) spreads their return over the time the backends need (`ReturnSchedule`).

The rate is only a measure of capacity while the pool is saturated, so the pool measures
it from the moment its queue stops being empty; a pool that idles at 2 handshakes/s is not
thereby limited to 2/s when a storm comes.
"""

from __future__ import annotations

import math

# Upper bound of a queue-based Retry-After: past a couple of minutes the estimate says
# little, and a client told to wait longer than that tends to give up instead.
RETRY_AFTER_MAX_S = 120.0


class DrainRate:
    """Handshake slots released per second, as an exponentially decaying count over a
    time constant `tau_s`. `rate` corrects for the warm-up, so the first seconds of a
    storm already give a fair figure, and returns None until `min_elapsed_s` have passed
    since the first event (one or two completions say nothing about a rate)."""

    __slots__ = ("_acc", "_first", "_last", "min_elapsed_s", "tau_s")

    def __init__(self, tau_s: float = 5.0, min_elapsed_s: float = 1.0) -> None:
        self.tau_s = tau_s
        self.min_elapsed_s = min_elapsed_s
        self._acc = 0.0
        self._first: float | None = None
        self._last = 0.0

    def on_done(self, now: float) -> None:
        if self._first is None:
            # The first completion only starts the clock: n events span n - 1 gaps.
            self._first = self._last = now
            return
        self._acc *= math.exp(-max(0.0, now - self._last) / self.tau_s)
        self._acc += 1.0
        self._last = now

    def rate(self, now: float, min_elapsed_s: float | None = None) -> float | None:
        """Per second, or None before `min_elapsed_s` (default: the constructor's) of
        measurement: a caller that acts harder on the figure can ask for a longer one."""
        needed = self.min_elapsed_s if min_elapsed_s is None else min_elapsed_s
        if self._first is None or now - self._first < needed:
            return None
        acc = self._acc * math.exp(-max(0.0, now - self._last) / self.tau_s)
        # A steady rate r gives acc = r * tau * (1 - exp(-elapsed / tau)).
        warmed = 1.0 - math.exp(-(now - self._first) / self.tau_s)
        return acc / (self.tau_s * warmed)


def beyond_deadline(position: int, waited_s: float, timeout_s: float, rate: float | None) -> bool:
    """Whether the waiter `position` places from the front of the line (1 = next) would,
    at `rate` slots per second, still be waiting when its `timeout_s` runs out. Unknown
    rate: no prediction, so no."""
    if not rate or rate <= 0:
        return False
    return position / rate > timeout_s - waited_s


class ReturnSchedule:
    """The return times promised to the clients a full queue turns away, one every
    1 / rate seconds from when the line ahead should be gone, in the order they were turned
    away. A storm's rejected clients then come back at the pace the pool completes
    handshakes, each into a line that has room for it, not all in the same few seconds
    (a window jittered around the same estimate sends a quarter of them back later than
    needed and makes the last client's wait half as long again)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0.0  # the latest return time promised

    def promise(self, now: float, queued: float, rate: float | None, base_s: float) -> float:
        """Seconds until this client should come back: its own place after the `queued`
        handshakes the pool will serve first and the clients told before it, at `rate` per
        second (at most RETRY_AFTER_MAX_S); `base_s` while the rate is unknown. Under a
        second when the line is that short: the caller rounds to whole seconds."""
        if not rate or rate <= 0:
            return base_s
        start = max(self._last, now + queued / rate)
        wait = min(RETRY_AFTER_MAX_S, start + 1.0 / rate - now)
        self._last = now + wait
        return wait
