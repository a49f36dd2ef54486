"""The schedule of a paced close (policy/pacing.py): times out of a count, a start and a
seeded random generator; no loop, no clock."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgate.policy.pacing import close_times, drain_window


def per_second(times: list[float], start: float) -> dict[int, int]:
    counts: dict[int, int] = {}
    for at in times:
        counts[int(at - start)] = counts.get(int(at - start), 0) + 1
    return counts


def test_nothing_to_close() -> None:
    assert close_times(0, 5.0, window_s=10.0, rng=random.Random(1)) == []


def test_a_window_is_cut_into_one_slot_per_close_with_a_random_point_in_each() -> None:
    times = close_times(4, 100.0, window_s=8.0, rng=random.Random(7))
    assert len(times) == 4
    for index, at in enumerate(times):
        assert 100.0 + 2.0 * index <= at < 100.0 + 2.0 * (index + 1)
    assert times == sorted(times)
    # Jitter: not the slot boundaries themselves.
    assert times != [100.0, 102.0, 104.0, 106.0]


def test_the_same_seed_gives_the_same_schedule() -> None:
    first = close_times(50, 0.0, window_s=5.0, rng=random.Random(3))
    assert first == close_times(50, 0.0, window_s=5.0, rng=random.Random(3))
    assert first != close_times(50, 0.0, window_s=5.0, rng=random.Random(4))


def test_1000_closes_over_10_s_put_at_most_101_in_any_second() -> None:
    # The measure: no second of the window holds more than 20 % of the closes.
    times = close_times(1000, 50.0, window_s=10.0, rng=random.Random())
    counts = per_second(times, 50.0)
    assert set(counts) == set(range(10))
    assert max(counts.values()) <= 101
    assert times[-1] < 60.0


def test_a_rate_gives_one_slot_of_1_over_rate_each() -> None:
    times = close_times(10, 0.0, window_s=1.0, rate_per_s=4.0, rng=random.Random(2))
    for index, at in enumerate(times):
        assert index / 4.0 <= at < (index + 1) / 4.0
    # The rate wins over the window: the last close is past it (the caller's deadline
    # decides what happens then).
    assert times[-1] > 2.0


def test_no_window_and_no_rate_is_all_at_once() -> None:
    assert close_times(3, 9.0, window_s=0.0, rng=random.Random(1)) == [9.0, 9.0, 9.0]


@pytest.mark.parametrize(
    ("grace", "window", "timeout", "expected"),
    [
        (1.0, 10.0, 30.0, (1.0, 10.0)),
        (1.0, 10.0, 5.0, (1.0, 4.0)),  # the window is cut to what the timeout leaves
        (5.0, 10.0, 2.0, (2.0, 0.0)),  # the grace too
        (0.0, 0.0, 30.0, (0.0, 0.0)),
        (1.0, 10.0, 0.0, (0.0, 0.0)),
    ],
)
def test_the_grace_and_window_fit_in_the_timeout(
    grace: float, window: float, timeout: float, expected: tuple[float, float]
) -> None:
    assert drain_window(grace, window, timeout) == expected


@given(
    count=st.integers(min_value=1, max_value=2000),
    window=st.floats(min_value=0.01, max_value=600.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_window_keeps_every_second_to_its_share_plus_one(
    count: int, window: float, seed: int
) -> None:
    times = close_times(count, 0.0, window_s=window, rng=random.Random(seed))
    assert len(times) == count
    assert times == sorted(times)
    assert all(0.0 <= at < window + 1e-9 for at in times)
    share = math.ceil(count / window)  # closes per second, on average
    assert max(per_second(times, 0.0).values()) <= share + 1
