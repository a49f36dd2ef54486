"""Storms whose clients retry (`wsgate storm --client naive|jitter|wsgate`). Pure: the
policies and the per-client records take `now` (seconds from the storm's start) and a
`random.Random`; the worker does the waiting.

- `naive`: tries again at once, as most hand-written clients do, up to `max_attempts`.
- `jitter`: exponential back-off with full jitter, deaf to the server's hints.
- `wsgate`: the policy of `wsgate.client` (`wsgate.policy.backoff`): back-off with full
  jitter, Retry-After and the retry-after of a 1013/1012/1008 close honoured, no retry
  where retrying cannot help.

A client retries until it is connected; once connected and its session ends with a
server's close before its hold is over (a backend restart, a drain), it reconnects the
same way: the reconnect storm of issue 15. `RetryRecords` keeps, per client, its attempts,
its failed attempts by cause and when it was connected, for `summary`.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from wsgate.policy.backoff import (
    Backoff,
    BackoffConfig,
    Closed,
    Decision,
    Failure,
    GiveUp,
    Refused,
    Retry,
    Unreachable,
)

CLIENT_MODES = ("none", "naive", "jitter", "wsgate")
DEFAULT_MAX_ATTEMPTS = 50
MAX_ATTEMPTS_LIMIT = 10_000
CLOSED_OUTCOME = "101 closed"  # a 101 closed at once by the server: an overload answer


class RetryPolicy(Protocol):
    def connected(self, now: float) -> None: ...
    def failed(self, failure: Failure, now: float) -> Decision: ...


class NaiveRetry:
    """Retry at once after any failure, until `max_attempts` failures in a row."""

    __slots__ = ("_failures_in_row", "max_attempts")

    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts
        self._failures_in_row = 0

    def connected(self, now: float) -> None:
        self._failures_in_row = 0

    def failed(self, failure: Failure, now: float) -> Decision:
        self._failures_in_row += 1
        if self._failures_in_row >= self.max_attempts:
            return GiveUp(f"{self._failures_in_row} attempts failed in a row")
        return Retry(at=now, delay_s=0.0, attempt=self._failures_in_row)


def make_policy(mode: str, rng: random.Random, max_attempts: int) -> RetryPolicy:
    """The retry policy of one client of a storm in `mode` (not "none")."""
    if mode == "naive":
        return NaiveRetry(max_attempts)
    if mode == "jitter":
        return Backoff(BackoffConfig(honour_hints=False, max_attempts=max_attempts), rng)
    if mode == "wsgate":
        return Backoff(BackoffConfig(max_attempts=max_attempts), rng)
    raise ValueError(f"no retry policy for client mode {mode!r}")


def failure_of(outcome: str, retry_after_s: int | None, close: tuple[int, str] | None) -> Failure:
    """The policy's view of a storm outcome key (see `storm.stats`): a status, a close
    right after the 101 (`close`: its code and reason), or a transport failure."""
    if close is not None:
        return Closed(close[0], close[1])
    head, _, cause = outcome.partition(" ")
    if head.isdigit():
        hint = None if retry_after_s is None else float(retry_after_s)
        # "503 overloaded_queue_full": the X-Wsgate-Cause of a gateway that spreads its hints.
        return Refused(int(head), hint, cause.isidentifier())
    return Unreachable(outcome.replace(" ", "_"))


@dataclass(slots=True)
class ClientRecord:
    """One storm client's story: `started_at`, `connected_at` (its first connection) and
    `last_connected_at` in seconds from the storm's start; failed attempts by cause."""

    started_at: float
    attempts: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    connected_at: float | None = None
    last_connected_at: float | None = None
    connects: int = 0
    gave_up: bool = False

    def attempt(self) -> None:
        self.attempts += 1

    def connected(self, now: float) -> None:
        self.connects += 1
        self.last_connected_at = now
        if self.connected_at is None:
            self.connected_at = now

    def failed(self, cause: str) -> None:
        self.failures[cause] += 1

    def to_row(self) -> list[Any]:
        return [
            self.started_at,
            self.attempts,
            dict(self.failures),
            self.connected_at,
            self.last_connected_at,
            self.connects,
            self.gave_up,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> ClientRecord:
        started, attempts, failures, connected, last, connects, gave_up = row
        return cls(started, attempts, Counter(failures), connected, last, connects, gave_up)


def summary(records: list[ClientRecord], mode: str) -> dict[str, Any]:
    """What a report shows of a retrying storm: time until all were connected (the last
    client's first connection, from the storm's start) and, for a reconnect storm, the
    last reconnection; failed attempts per client; failures by cause."""
    failed = sorted(sum(r.failures.values()) for r in records)
    by_cause: Counter[str] = Counter()
    for record in records:
        by_cause.update(record.failures)
    connected = [r.connected_at for r in records if r.connected_at is not None]
    all_connected = bool(records) and len(connected) == len(records)
    last = [r.last_connected_at for r in records if r.last_connected_at is not None]
    waits = sorted(r.connected_at - r.started_at for r in records if r.connected_at is not None)
    return {
        "mode": mode,
        "clients": len(records),
        "connected": len(connected),
        "never_connected": len(records) - len(connected),
        "gave_up": sum(1 for r in records if r.gave_up),
        "attempts": sum(r.attempts for r in records),
        "reconnects": sum(max(r.connects - 1, 0) for r in records),
        "time_until_all_connected_s": _round(max(connected)) if all_connected else None,
        "last_connected_s": _round(max(last)) if last else None,
        "time_to_connected_s": _spread(waits),
        "failed_attempts_per_client": _spread([float(n) for n in failed]),
        "failed_attempts": sum(failed),
        "clients_without_failure": sum(1 for n in failed if n == 0),
        "failures_by_cause": dict(by_cause.most_common()),
    }


def _round(value: float) -> float:
    return round(value, 3)


def _spread(values: list[float]) -> dict[str, float | None]:
    """mean, p50, p90, p99 and max of sorted `values` (nearest rank)."""
    if not values:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}

    def rank(p: float) -> float:
        return values[max(math.ceil(p / 100 * len(values)) - 1, 0)]

    return {
        "mean": _round(sum(values) / len(values)),
        "p50": _round(rank(50)),
        "p90": _round(rank(90)),
        "p99": _round(rank(99)),
        "max": _round(values[-1]),
    }
