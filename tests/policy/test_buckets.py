"""Token buckets and jittered Retry-After values (policy/buckets.py), on a clock the test
moves."""

from __future__ import annotations

import random

from wsgate.policy.buckets import TokenBucket, jittered_retry_after


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_s(0.0) == 0.5
    assert not bucket.take(0.4)
    assert bucket.take(0.5)
    assert bucket.take(10.0) and bucket.full(20.0)


def test_a_bucket_starts_full_and_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, now=0.0)
    assert bucket.full(0.0) and bucket.wait_s(0.0) == 0.0
    # An hour idle refills two tokens, not 3600.
    assert [bucket.take(3600.0) for _ in range(3)] == [True, True, False]
    assert not bucket.full(3600.0)


def test_wait_s_counts_the_part_of_a_token_already_earned() -> None:
    bucket = TokenBucket(rate=4.0, burst=1.0, now=0.0)
    assert bucket.take(0.0)
    assert bucket.wait_s(0.0) == 0.25
    assert bucket.wait_s(0.125) == 0.125
    assert bucket.wait_s(0.25) == 0.0


def test_a_clock_that_steps_back_takes_nothing_away() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)  # earlier than the last refill: no refill, no loss
    assert bucket.take(11.0)


def test_retry_after_is_jittered_and_at_least_one() -> None:
    rng = random.Random(7)
    values = [jittered_retry_after(10, rng) for _ in range(200)]
    assert min(values) >= 5 and max(values) <= 15
    assert len(set(values)) > 5  # spread out, not one second for everybody
    assert jittered_retry_after(0.1, rng) == 1


def test_retry_after_without_spread_is_the_base_rounded_up() -> None:
    rng = random.Random(1)
    assert jittered_retry_after(2.2, rng, spread=0.0) == 3
    assert jittered_retry_after(0.0, rng, spread=0.0) == 1
    # uniform over [3, 5], rounded up: 4 or 5 (3 only at exactly 3.0)
    assert {jittered_retry_after(4, rng, spread=0.25) for _ in range(200)} == {4, 5}
