from __future__ import annotations

import random

import pytest

from wsgate.storm import plan
from wsgate.storm.plan import Burst, ClosedLoop, PlanError, Ramp, Rate


def test_burst_starts_everything_at_zero() -> None:
    assert plan.build(Burst(4), seed=1) == (0.0, 0.0, 0.0, 0.0)


def test_uniform_rate_is_evenly_spaced_from_zero() -> None:
    assert plan.build(Rate(per_s=4, duration_s=1.0), seed=1) == (0.0, 0.25, 0.5, 0.75)


def test_poisson_rate_is_reproducible_for_a_seed_and_differs_across_seeds() -> None:
    a = plan.build(Rate(per_s=100, duration_s=2.0), seed=7, spacing="poisson")
    b = plan.build(Rate(per_s=100, duration_s=2.0), seed=7, spacing="poisson")
    c = plan.build(Rate(per_s=100, duration_s=2.0), seed=8, spacing="poisson")
    assert a == b
    assert a != c
    assert list(a) == sorted(a)
    assert all(0.0 <= t < 2.0 for t in a)
    # 200 expected; a Poisson count this far off would be a > 5 sigma event.
    assert 130 <= len(a) <= 270


def test_poisson_first_values_are_pinned() -> None:
    got = plan.build(Rate(per_s=10, duration_s=1.0), seed=42, spacing="poisson")
    rng = random.Random(42)
    position, expected = 0.0, []
    while True:
        position += rng.expovariate(1.0)
        if position >= 10:
            break
        expected.append(position / 10)
    assert got == tuple(expected)


def test_ramp_rate_rises_linearly() -> None:
    # 0 -> 20/s over 10 s: 100 arrivals, N(t) = t^2, so the k-th is at sqrt(k).
    schedule = plan.build(Ramp(0.0, 20.0, 10.0), seed=0)
    assert len(schedule) == 100
    assert schedule[0] == 0.0
    assert schedule[1] == pytest.approx(1.0)
    assert schedule[4] == pytest.approx(2.0)
    assert schedule[99] == pytest.approx(99**0.5)
    first_half = sum(1 for t in schedule if t < 5.0)
    assert first_half == 25


def test_falling_ramp_front_loads_arrivals() -> None:
    schedule = plan.build(Ramp(20.0, 0.0, 10.0), seed=0)
    assert len(schedule) == 100
    assert sum(1 for t in schedule if t < 5.0) == 75


def test_flat_ramp_equals_rate() -> None:
    assert plan.build(Ramp(5.0, 5.0, 2.0), seed=3) == plan.build(Rate(5.0, 2.0), seed=3)


def test_split_deals_round_robin_and_loses_nothing() -> None:
    schedule = plan.build(Rate(per_s=10, duration_s=1.0), seed=1)
    parts = plan.split(schedule, 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert parts[0] == (0.0, 0.3, 0.6, 0.9)
    assert sorted(t for p in parts for t in p) == list(schedule)


def test_split_concurrency() -> None:
    assert plan.split_concurrency(10, 4) == [3, 3, 2, 2]
    assert plan.split_concurrency(1, 3) == [1, 0, 0]


@pytest.mark.parametrize(
    ("arrival", "message"),
    [
        (Burst(0), "burst must be between"),
        (Burst(plan.MAX_CONNECTIONS + 1), "burst must be between"),
        (Rate(0.0, 1.0), "rate must be between"),
        (Rate(10.0, 0.0), "duration must be between"),
        (Rate(10.0, plan.MAX_DURATION_S + 1), "duration must be between"),
        (Rate(1000.0, 3000.0), "limit is 1,000,000"),
        (Ramp(0.0, 0.0, 5.0), "at least one"),
        (ClosedLoop(0, 5.0), "concurrency must be between"),
        (Rate(float("nan"), 1.0), "rate must be between"),
    ],
)
def test_bounds_are_enforced(arrival: plan.Arrival, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan.validate(arrival)


def test_bounds_accept_the_limits() -> None:
    plan.validate(Burst(plan.MAX_CONNECTIONS))
    plan.validate(ClosedLoop(plan.MAX_CONCURRENCY, plan.MAX_DURATION_S, plan.MAX_CONNECTIONS))


def test_ideal_duration() -> None:
    assert plan.ideal_duration_s(3000, 2 * 250.0) == 6.0
    with pytest.raises(PlanError):
        plan.ideal_duration_s(1, 0.0)
