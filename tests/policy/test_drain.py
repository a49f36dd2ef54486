"""DrainRate and the queue-based Retry-After, on a fake clock."""

from __future__ import annotations

import pytest

from wsgate.policy.drain import RETRY_AFTER_MAX_S, DrainRate, queue_retry_after_s


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


def test_retry_after_follows_the_queue() -> None:
    assert queue_retry_after_s(1024, None, 5.0) == 5.0  # no rate yet: the configured base
    assert queue_retry_after_s(1024, 42.0, 5.0) == pytest.approx(1024 / 42.0)
    assert queue_retry_after_s(10, 42.0, 5.0) == 5.0  # never below the base
    assert queue_retry_after_s(100_000, 1.0, 5.0) == RETRY_AFTER_MAX_S
    assert queue_retry_after_s(5, 0.0, 5.0) == 5.0
