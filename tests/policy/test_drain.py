"""DrainRate and the queue-based Retry-After, on a fake clock."""

from __future__ import annotations

import pytest

from wsgate.policy.drain import (
    RETRY_AFTER_MAX_S,
    DrainRate,
    ReturnSchedule,
    beyond_deadline,
)


def feed(drain: DrainRate, rate: float, start: float, seconds: float) -> float:
    """Completions at a steady `rate` per second; returns the time of the last one."""
    now = start
    for i in range(int(rate * seconds)):
        now = start + (i + 1) / rate
        drain.on_done(now)
    return now


def test_unknown_until_there_is_something_to_measure() -> None:
    drain = DrainRate(tau_s=5.0, min_elapsed_s=1.0)
    assert drain.rate(0.0) is None
    drain.on_done(10.0)
    assert drain.rate(10.5) is None
    now = feed(drain, 10.0, 10.0, 2.0)
    assert drain.rate(now) is not None
    assert drain.rate(now, min_elapsed_s=5.0) is None  # a caller can ask for more evidence


@pytest.mark.parametrize("rate", [2.0, 42.0, 500.0])
def test_a_steady_rate_is_found_during_warm_up_and_after(rate: float) -> None:
    drain = DrainRate(tau_s=5.0)
    now = feed(drain, rate, 100.0, 2.0)  # shorter than tau: the warm-up correction
    warm = drain.rate(now)
    assert warm is not None and warm == pytest.approx(rate, rel=0.25)
    now = feed(drain, rate, now, 30.0)
    steady = drain.rate(now)
    assert steady is not None and steady == pytest.approx(rate, rel=0.1)


def test_a_slower_pool_shows_within_a_few_time_constants() -> None:
    drain = DrainRate(tau_s=5.0)
    now = feed(drain, 100.0, 0.0, 30.0)
    now = feed(drain, 10.0, now, 20.0)
    slowed = drain.rate(now)
    assert slowed is not None and slowed == pytest.approx(10.0, rel=0.2)
    idle = drain.rate(now + 30.0)  # nothing completes: the rate decays towards 0
    assert idle is not None and idle < 0.1


def test_each_client_turned_away_gets_its_own_return_time_after_the_line() -> None:
    returns = ReturnSchedule()
    assert returns.promise(0.0, 1024, None, 5.0) == 5.0  # no rate yet: the configured base
    assert returns.promise(0.0, 5, 0.0, 5.0) == 5.0
    # 100 wait ahead at 50/s: the line is gone in 2 s; the clients told follow one every
    # 20 ms, in the order they were told, so that they come back as the pool can take them.
    waits = [returns.promise(0.0, 100, 50.0, 5.0) for _ in range(100)]
    assert waits[0] == pytest.approx(2.02)
    assert waits[-1] == pytest.approx(4.0)
    assert waits == sorted(waits)
    # Half a second later, with the line unchanged: after the last one promised.
    assert returns.promise(0.5, 100, 50.0, 5.0) == pytest.approx(4.02 - 0.5)
    # A line that is short again: the next turn, from a schedule that has passed.
    assert returns.promise(60.0, 0, 50.0, 5.0) == pytest.approx(0.02)
    # Never more than the cap, and the schedule does not run away past it.
    far = ReturnSchedule()
    assert far.promise(0.0, 100_000, 1.0, 5.0) == RETRY_AFTER_MAX_S
    assert far.promise(0.0, 100_000, 1.0, 5.0) == RETRY_AFTER_MAX_S


def test_beyond_deadline_compares_the_turn_with_the_time_left() -> None:
    # 42 slots/s, 30 s timeout: place 1,260 is served just in time, 1,261 is not.
    assert not beyond_deadline(1260, 0.0, 30.0, 42.0)
    assert beyond_deadline(1261, 0.0, 30.0, 42.0)
    # Having waited 10 s already leaves 20 s: place 840 fits, 841 does not.
    assert not beyond_deadline(840, 10.0, 30.0, 42.0)
    assert beyond_deadline(841, 10.0, 30.0, 42.0)
    # No measured rate, no prediction: only the real timeout applies.
    assert not beyond_deadline(10**6, 0.0, 30.0, None)
    assert not beyond_deadline(10**6, 0.0, 30.0, 0.0)


def test_a_storm_is_split_into_served_in_time_and_told_at_once() -> None:
    """The pool's use of it, replayed: 3,000 arrive at t = 0, the pool completes 42/s;
    once the rate is known, the waiters whose turn would come after 30 s are the ones
    turned away, newest first."""
    drain = DrainRate()
    line = list(range(3000))  # places in line; all joined at t = 0
    now = feed(drain, 42.0, 0.0, 1.5)
    served = int(42.0 * 1.5)
    line = line[served:]
    rate = drain.rate(now)
    shed = 0
    while line and beyond_deadline(len(line), now, 30.0, rate):
        line.pop()
        shed += 1
    kept = len(line)
    assert kept + served == pytest.approx(42 * 30, rel=0.05)
    assert shed == pytest.approx(3000 - 42 * 30, rel=0.05)
