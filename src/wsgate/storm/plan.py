"""Seeded arrival schedules for a storm: when each handshake starts.

Pure: no clock, no sockets. An open schedule is a sorted tuple of offsets in seconds from
the storm's start; `split` deals it to worker processes. A closed loop has no schedule, only
a concurrency per worker and a time and count bound. Call `build` with an `Arrival`, then
`split` or `split_concurrency`, then hand each part to a worker (`storm.runner`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from wsgate.errors import InputError

# Bounds that keep every load loop finite whatever the flags say.
MAX_CONNECTIONS = 1_000_000
MAX_DURATION_S = 3600.0
MAX_RATE_PER_S = 100_000.0
MAX_CONCURRENCY = 50_000

Spacing = Literal["uniform", "poisson"]


class PlanError(InputError, ValueError):
    """A schedule that cannot be built from these arguments (the CLI exits 2 with it)."""


@dataclass(frozen=True, slots=True)
class Burst:
    """`count` handshakes at once, at offset 0."""

    count: int


@dataclass(frozen=True, slots=True)
class Rate:
    """A steady `per_s` handshakes per second for `duration_s`."""

    per_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class Ramp:
    """A rate rising (or falling) linearly from `start_per_s` to `end_per_s` over
    `duration_s`."""

    start_per_s: float
    end_per_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class ClosedLoop:
    """`concurrency` clients that each handshake, talk, close and repeat, until
    `duration_s` has passed or `max_count` handshakes have started (0: no count bound)."""

    concurrency: int
    duration_s: float
    max_count: int = 0


Arrival = Burst | Rate | Ramp | ClosedLoop


def validate(arrival: Arrival) -> None:
    """Raise PlanError with a sentence a user can act on when a bound is broken."""
    if isinstance(arrival, Burst):
        _check_range("burst", arrival.count, 1, MAX_CONNECTIONS)
        return
    _check_range("duration", arrival.duration_s, 0.001, MAX_DURATION_S)
    if isinstance(arrival, Rate):
        _check_range("rate", arrival.per_s, 0.001, MAX_RATE_PER_S)
    elif isinstance(arrival, Ramp):
        _check_range("ramp start rate", arrival.start_per_s, 0.0, MAX_RATE_PER_S)
        _check_range("ramp end rate", arrival.end_per_s, 0.0, MAX_RATE_PER_S)
        if arrival.start_per_s + arrival.end_per_s <= 0:
            raise PlanError("ramp: at least one of the two rates must be above 0")
    else:
        _check_range("concurrency", arrival.concurrency, 1, MAX_CONCURRENCY)
        _check_range("count", arrival.max_count, 0, MAX_CONNECTIONS)
    total = expected_count(arrival)
    if total > MAX_CONNECTIONS:
        raise PlanError(
            f"this plan starts about {total:,.0f} handshakes; the limit is {MAX_CONNECTIONS:,}"
        )


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high) or math.isnan(value):
        raise PlanError(f"{name} must be between {low:g} and {high:g}, got {value:g}")


def expected_count(arrival: Arrival) -> float:
    """How many handshakes an open schedule starts (a closed loop: its count bound or 0)."""
    if isinstance(arrival, Burst):
        return float(arrival.count)
    if isinstance(arrival, Rate):
        return arrival.per_s * arrival.duration_s
    if isinstance(arrival, Ramp):
        return (arrival.start_per_s + arrival.end_per_s) / 2.0 * arrival.duration_s
    return float(arrival.max_count)


def build(
    arrival: Burst | Rate | Ramp, seed: int, spacing: Spacing = "uniform"
) -> tuple[float, ...]:
    """The start offsets (seconds, sorted) of every handshake of an open schedule.

    `uniform` spaces arrivals evenly (the k-th at cumulative count k); `poisson` draws
    exponential gaps in cumulative-count space from `random.Random(seed)`, so the same seed
    always gives the same schedule, and a ramp stays a ramp.
    """
    validate(arrival)
    if isinstance(arrival, Burst):
        return (0.0,) * arrival.count
    total = expected_count(arrival)
    rng = random.Random(seed)
    marks: list[float] = []
    position = 0.0
    while len(marks) < MAX_CONNECTIONS:
        position += rng.expovariate(1.0) if spacing == "poisson" else 1.0
        # The first uniform arrival goes at 0, not after one gap.
        mark = position - 1.0 if spacing == "uniform" else position
        if mark >= total - 1e-9:
            break
        marks.append(mark)
    return tuple(_offset_at_count(arrival, mark) for mark in marks)


def _offset_at_count(arrival: Rate | Ramp, count: float) -> float:
    """Invert the cumulative arrival count N(t) to find t."""
    if isinstance(arrival, Rate):
        return count / arrival.per_s
    r1, r2, span = arrival.start_per_s, arrival.end_per_s, arrival.duration_s
    slope = (r2 - r1) / span
    if abs(slope) < 1e-12:
        return count / r1
    # N(t) = r1 t + slope t^2 / 2; take the root in [0, span].
    disc = r1 * r1 + 2.0 * slope * count
    t = (-r1 + math.sqrt(max(disc, 0.0))) / slope
    return min(max(t, 0.0), span)


def split(schedule: tuple[float, ...], workers: int) -> list[tuple[float, ...]]:
    """Deal a schedule to `workers` round robin, so each worker's share covers the whole
    span at 1/workers of the rate (a block split would give one worker all the early ones)."""
    if workers < 1:
        raise PlanError("workers must be at least 1")
    return [schedule[index::workers] for index in range(workers)]


def split_concurrency(total: int, workers: int) -> list[int]:
    """Share a closed loop's concurrency (and likewise a count) as evenly as integers allow."""
    if workers < 1:
        raise PlanError("workers must be at least 1")
    base, extra = divmod(total, workers)
    return [base + (1 if index < extra else 0) for index in range(workers)]


def ideal_duration_s(count: int, capacity_per_s: float) -> float:
    """Seconds a target that completes `capacity_per_s` handshakes per second needs for
    `count` of them, with no failures: the bar a storm's time to last success is held to."""
    if capacity_per_s <= 0:
        raise PlanError("capacity must be above 0")
    return count / capacity_per_s
