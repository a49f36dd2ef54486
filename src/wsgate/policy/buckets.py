"""Token buckets for per-client handshake rates, and jittered Retry-After values."""

from __future__ import annotations

import math
import random


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take(now)` spends one if there is one."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until the next token."""
        self._refill(now)
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self._tokens >= self.burst


def jittered_retry_after(base_s: float, rng: random.Random, spread: float = 0.5) -> int:
    """Whole seconds in [base*(1-spread), base*(1+spread)], at least 1: clients told to
    come back do not all come back in the same second."""
    low = max(1.0, base_s * (1 - spread))
    high = max(low, base_s * (1 + spread))
    return max(1, math.ceil(rng.uniform(low, high)))
