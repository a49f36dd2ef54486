"""A retry budget (as in Finagle and Envoy): retries may add at most `ratio` of the
recent first attempts, plus `min_per_s` so a quiet pool can still retry; a storm of
failures then cannot multiply the load on the backends that are left."""

from __future__ import annotations

from collections import deque

from mypy_extensions import mypyc_attr


# Subclassed in Python by gateway/pool_metrics.py (MeteredBudget): a compiled class must allow it.
@mypyc_attr(allow_interpreted_subclasses=True)
class RetryBudget:
    def __init__(self, ratio: float = 0.2, min_per_s: float = 3.0, window_s: float = 10.0) -> None:
        self.ratio = ratio
        self.min_per_s = min_per_s
        self.window_s = window_s
        self._attempts: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        for events in (self._attempts, self._retries):
            while events and events[0] <= horizon:
                events.popleft()

    def on_attempt(self, now: float) -> None:
        self._attempts.append(now)
        self._trim(now)

    def try_retry(self, now: float) -> bool:
        """Spend one retry if the budget allows it."""
        self._trim(now)
        allowed = self.ratio * len(self._attempts) + self.min_per_s * self.window_s
        if len(self._retries) + 1 > allowed:
            return False
        self._retries.append(now)
        return True
