"""When a WebSocket client tries again: exponential back-off with full jitter and a cap,
honouring what the server said (Retry-After on 503/429, the `retry-after=N` of a
1013/1012/1008 close reason), and giving up where retrying cannot help (400, 401, 403,
404, 426, a 1008 without a hint, or a configured list).

Pure: no clock and no sockets. The caller passes `now` (any monotonic seconds) and a
`random.Random`, and carries out the `Retry` or `GiveUp` it gets back. Used by
`wsgate.client` and by `wsgate storm --client jitter|wsgate`.

Full jitter (delay drawn uniformly from [0, min(cap, base * 2**n)]) is the variant that
spreads a crowd of clients best ("Exponential Backoff And Jitter", AWS Architecture
Blog, 2015). A server's hint of H seconds is a floor, not a moment: a thousand clients
told H all at once would come back together, so each draws its retry from
[H, H + spread] with the spread a share of H.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from wsgate.protocol.close_reason import parse_close_reason

# Statuses where the same request will get the same answer: the URL, the credentials or
# the protocol version is wrong (RFC 6455 section 4.4 for 426).
GIVE_UP_STATUSES = frozenset({400, 401, 403, 404, 426})
# A policy violation (RFC 6455 section 7.4.1) without a retry-after is the server saying
# "not you, not again"; with a hint it is a rate limit and worth waiting for.
GIVE_UP_CLOSE_CODES = frozenset({1008})
NO_CLOSE_FRAME = 1006  # RFC 6455 section 7.1.5: the connection ended without a close frame


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """The knobs of the policy; the defaults suit a browser-like client of a gateway.

    `base_s` is the first window, doubled (`multiplier`) on each failure in a row up to
    `cap_s`. A server hint H is honoured as a delay in [H, H + spread] with spread =
    `hint_spread_ratio` * H, at least `hint_spread_min_s` and at most `cap_s`; a hint is
    believed up to `max_hint_s`. A hint from a server that spreads its own hints gets only
    `hint_spread_min_s` (wsgate says so with its cause: `X-Wsgate-Cause` on the 503 or 429,
    `cause=` in the close reason; it gives each client turned away its own time, and a
    spread on top of that only makes the last one come back later than needed).
    `honour_hints=False` ignores hints (the storm's `jitter` clients). After
    `max_attempts` failures in a row (None: never) the policy gives up.
    A connection that stayed open `stable_after_s` resets the count, so that a server
    which accepts and at once closes (an overload answer) still meets a growing delay.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    multiplier: float = 2.0
    hint_spread_ratio: float = 0.5
    hint_spread_min_s: float = 1.0
    max_hint_s: float = 300.0
    honour_hints: bool = True
    max_attempts: int | None = None
    stable_after_s: float = 5.0
    give_up_statuses: frozenset[int] = field(default=GIVE_UP_STATUSES)
    give_up_close_codes: frozenset[int] = field(default=GIVE_UP_CLOSE_CODES)

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.multiplier < 1:
            raise ValueError("back-off needs 0 < base_s <= cap_s and multiplier >= 1")
        if self.hint_spread_ratio < 0 or self.hint_spread_min_s < 0 or self.max_hint_s < 0:
            raise ValueError("hint spread and max_hint_s cannot be negative")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None: never give up)")


@dataclass(frozen=True, slots=True)
class Refused:
    """The handshake got an HTTP answer other than 101; `retry_after_s` from its
    Retry-After header (see `parse_retry_after`), None when it had none."""

    status: int
    retry_after_s: float | None = None
    spread_by_server: bool = False  # the server spreads its hints itself (X-Wsgate-Cause)


@dataclass(frozen=True, slots=True)
class Closed:
    """An open connection ended: the server's close code and reason, or 1006 and "" when
    no close frame came (a reset, a backend restart behind a plain TCP proxy)."""

    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unreachable:
    """No HTTP answer at all: refused, reset, timed out, or not HTTP. `kind` is a short
    word for statistics (`refused`, `timeout`, `reset`, `error`)."""

    kind: str = "error"


Failure = Refused | Closed | Unreachable


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again at `at` (`delay_s` after the failure). `hint_s` is the server's hint
    that was honoured, None when the delay is plain back-off; `attempt` counts the
    failures in a row, this one included."""

    at: float
    delay_s: float
    attempt: int
    hint_s: float | None = None


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: retrying cannot help. `reason` is one sentence for the user."""

    reason: str


Decision = Retry | GiveUp


def failure_cause(failure: Failure) -> str:
    """A short code for statistics: `http_503`, `close_1013`, `unreachable_refused`."""
    if isinstance(failure, Refused):
        return f"http_{failure.status}"
    if isinstance(failure, Closed):
        return f"close_{failure.code}"
    return f"unreachable_{failure.kind}"


def failure_hint_s(failure: Failure) -> float | None:
    """The seconds the server asked the client to wait, None when it did not say."""
    if isinstance(failure, Refused):
        return failure.retry_after_s
    if isinstance(failure, Closed):
        hint = parse_close_reason(failure.reason).retry_after_s
        return None if hint is None else float(hint)
    return None


def spread_by_server(failure: Failure) -> bool:
    """Whether the server spread its hint over its clients itself (see BackoffConfig)."""
    if isinstance(failure, Refused):
        return failure.spread_by_server
    if isinstance(failure, Closed):
        return parse_close_reason(failure.reason).cause is not None
    return False


def parse_retry_after(value: str, now_epoch_s: float) -> float | None:
    """The seconds of a Retry-After header (RFC 9110 section 10.2.3): delay-seconds or
    an HTTP-date, the date taken against `now_epoch_s` (wall-clock seconds since the
    epoch); None for a value that is neither. A date in the past is 0."""
    value = value.strip()
    if value.isascii() and value.isdecimal():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT; a zone-less one is read as such
        return None
    return max(when.timestamp() - now_epoch_s, 0.0)


class Backoff:
    """The retry policy of one client. Call `connected(now)` when a connection opens
    and `failed(failure, now)` when an attempt or a connection fails; the answer is
    when to try next, or to stop."""

    __slots__ = ("_connected_at", "_failures_in_row", "_rng", "config")

    def __init__(self, config: BackoffConfig, rng: random.Random) -> None:
        self.config = config
        self._rng = rng
        self._failures_in_row = 0
        self._connected_at: float | None = None

    @property
    def failures_in_row(self) -> int:
        return self._failures_in_row

    def connected(self, now: float) -> None:
        self._connected_at = now

    def failed(self, failure: Failure, now: float) -> Decision:
        config = self.config
        if self._connected_at is not None and now - self._connected_at >= config.stable_after_s:
            self._failures_in_row = 0
        self._connected_at = None
        self._failures_in_row += 1
        hint = failure_hint_s(failure) if config.honour_hints else None
        refusal = self._refusal(failure, hint)
        if refusal is not None:
            return GiveUp(refusal)
        if config.max_attempts is not None and self._failures_in_row >= config.max_attempts:
            return GiveUp(
                f"{self._failures_in_row} attempts failed in a row "
                f"(last: {failure_cause(failure)}); max_attempts is {config.max_attempts}."
            )
        if hint is not None:
            delay = self._hinted_delay(hint, spread_by_server(failure))
        else:
            delay = self._jittered_delay()
        return Retry(at=now + delay, delay_s=delay, attempt=self._failures_in_row, hint_s=hint)

    def _refusal(self, failure: Failure, hint: float | None) -> str | None:
        if isinstance(failure, Refused) and failure.status in self.config.give_up_statuses:
            return f"The server answered HTTP {failure.status}; retrying cannot change that."
        if (
            isinstance(failure, Closed)
            and failure.code in self.config.give_up_close_codes
            and hint is None
        ):
            reason = f" ({failure.reason})" if failure.reason else ""
            return f"The server closed with {failure.code}{reason} and no retry-after."
        return None

    def _jittered_delay(self) -> float:
        config = self.config
        # The exponent is bounded so that a long outage cannot overflow the float.
        exponent = min(self._failures_in_row - 1, 64)
        window = min(config.cap_s, config.base_s * config.multiplier**exponent)
        return self._rng.uniform(0.0, window)

    def _hinted_delay(self, hint: float, spread_by_server: bool) -> float:
        config = self.config
        floor = min(max(hint, 0.0), config.max_hint_s)
        share = 0.0 if spread_by_server else floor * config.hint_spread_ratio
        spread = min(config.cap_s, max(config.hint_spread_min_s, share))
        return floor + self._rng.uniform(0.0, spread)
