"""In-flight handshake limits: a fixed one, and an adaptive one that finds a backend's
capacity from measured handshake latency (the gradient method of Netflix's
concurrency-limits `Gradient2Limit`, also the idea behind Envoy's adaptive concurrency)."""

from __future__ import annotations

import math
from dataclasses import dataclass


class FixedLimit:
    def __init__(self, limit: int) -> None:
        self.limit = float(limit)

    def on_sample(self, rtt_s: float, inflight: int, now: float, dropped: bool = False) -> None:
        """A fixed limit learns nothing."""

    @property
    def value(self) -> int:
        return int(self.limit)


@dataclass
class AdaptiveSettings:
    initial: float = 8.0
    min_limit: float = 1.0
    max_limit: float = 500.0
    # Latency may grow to `tolerance` times the baseline before the limit shrinks.
    tolerance: float = 2.0
    smoothing: float = 0.2
    short_window: int = 10  # samples in the short-term latency average
    # The baseline is the least latency seen; it creeps up by this share per second, so a
    # backend that became slower for good is relearned in minutes.
    baseline_drift_per_s: float = 0.002


class AdaptiveLimit:
    """Gradient limit: compare short-term latency with the no-load baseline.

    limit' = limit * clamp(tolerance * baseline / short, 0.5, 1) + sqrt(limit), smoothed.
    While latency stays near the baseline the sqrt term grows the limit; once queueing
    inside the backend raises latency past `tolerance` times the baseline, the gradient
    drops below 1 and the limit shrinks. Growth pauses while the limit is not used.
    """

    def __init__(self, settings: AdaptiveSettings | None = None) -> None:
        self.settings = s = settings or AdaptiveSettings()
        self.limit = s.initial
        self._short: float | None = None
        self._baseline: float | None = None
        self._last = 0.0

    @property
    def value(self) -> int:
        return max(int(self.settings.min_limit), int(self.limit))

    def on_sample(self, rtt_s: float, inflight: int, now: float, dropped: bool = False) -> None:
        """Feed one finished handshake: its latency and the in-flight count when it began.
        A dropped handshake (timeout, reset) counts as a strong overload signal."""
        s = self.settings
        if dropped:
            self.limit = max(s.min_limit, self.limit * 0.9)
            return
        rtt_s = max(rtt_s, 1e-6)
        if self._baseline is None or rtt_s <= self._baseline:
            self._baseline = rtt_s
        else:
            grown = self._baseline * (1.0 + s.baseline_drift_per_s * max(0.0, now - self._last))
            self._baseline = min(rtt_s, grown)
        self._last = now
        alpha = 2.0 / (s.short_window + 1)
        self._short = rtt_s if self._short is None else self._short + alpha * (rtt_s - self._short)
        gradient = max(0.5, min(1.0, s.tolerance * self._baseline / self._short))
        proposed = self.limit * gradient + math.sqrt(self.limit)
        if inflight < self.limit / 2 and proposed > self.limit:
            return  # app-limited: no evidence that more would be fine
        smoothed = self.limit * (1 - s.smoothing) + proposed * s.smoothing
        self.limit = max(s.min_limit, min(s.max_limit, smoothed))
