"""A backend's health as a small state machine fed by events with a clock.

- Active checks move it DOWN after `fall` consecutive failures and UP after `rise`
  consecutive successes (HAProxy's rise/fall).
- Passive ejection: `eject_after` consecutive connect or handshake failures eject it for
  `eject_base_s`, doubling on each ejection in a row up to `eject_max_s`; after that it
  gets one trial, and a success ends the ejection.
- Slow start: when it comes up or back, its share ramps linearly from `MIN_SHARE` to 1
  over `slow_start_s`, so a restarted backend is not hit by the whole reconnect wave.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """The knobs above, every one required: their defaults live in the config model only
    (`PoolConfig` and its `health` table), and the gateway's pool copies them here."""

    rise: int
    fall: int
    eject_after: int
    eject_base_s: float
    eject_max_s: float
    slow_start_s: float
    check_interval_s: float  # 0: no active checks


class BackendHealth:
    def __init__(self, settings: HealthSettings, now: float) -> None:
        self.s = settings
        self.up = True  # until checks say otherwise, as HAProxy starts servers
        self._check_streak = 0  # >0 successes in a row, <0 failures in a row
        self.failures = 0  # consecutive passive failures
        self.ejections = 0  # ejections in a row
        self.ejected_until = 0.0
        self._trial = False
        self.since = now  # when it last came (back) into service
        self._ramping = False
        # The operator's word (the admin API's drain): no new handshakes or requests,
        # whatever the checks say.
        self.drained = False

    # -- active checks -----------------------------------------------------------------
    def on_check(self, ok: bool, now: float) -> bool:
        """Record a check result; True when the state flipped."""
        if ok:
            self._check_streak = max(1, self._check_streak + 1)
            if not self.up and self._check_streak >= self.s.rise:
                self.up = True
                self._came_back(now)
                return True
        else:
            self._check_streak = min(-1, self._check_streak - 1)
            if self.up and -self._check_streak >= self.s.fall:
                self.up = False
                return True
        return False

    # -- passive observations -----------------------------------------------------------
    def on_success(self, now: float) -> None:
        if self._trial or self.ejections:
            self._trial = False
            self.ejections = 0
            self._came_back(now)
        self.failures = 0

    def on_failure(self, now: float) -> bool:
        """A connect or handshake failure; True when this ejects the backend."""
        self.failures += 1
        if self._trial or self.failures >= self.s.eject_after:
            self.ejections += 1
            # The exponent is capped: 2**1023 is the largest power a float holds, and a
            # backend down for days must not overflow the back-off.
            doubling = 2.0 ** min(self.ejections - 1, 64)
            backoff = min(self.s.eject_max_s, self.s.eject_base_s * doubling)
            self.ejected_until = now + backoff
            self._trial = False
            self.failures = 0
            return True
        return False

    # -- what the balancer asks -----------------------------------------------------------
    def back_in(self, now: float) -> float | None:
        """Seconds until this backend may take handshakes again, as far as the gateway can
        tell (0: now): the rest of an ejection, or the checks it still needs to pass to
        count as up; None when only an active check could tell and there is none."""
        if not self.up:
            if self.s.check_interval_s <= 0:
                return None
            return (self.s.rise - max(0, self._check_streak)) * self.s.check_interval_s
        return max(0.0, self.ejected_until - now)

    def available(self, now: float) -> bool:
        if not self.up or self.drained:
            return False
        if self.ejected_until > now:
            return False
        if self.ejections and not self._trial:
            self._trial = True  # back-off over: one trial decides
        return True

    def share(self, now: float) -> float:
        if not self._ramping or self.s.slow_start_s <= 0:
            return 1.0
        progress = (now - self.since) / self.s.slow_start_s
        if progress >= 1.0:
            self._ramping = False
            return 1.0
        return max(MIN_SHARE, progress)

    def _came_back(self, now: float) -> None:
        self.since = now
        self._ramping = self.s.slow_start_s > 0
