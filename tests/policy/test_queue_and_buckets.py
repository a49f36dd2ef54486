from __future__ import annotations

import random

from wsgate.policy.buckets import TokenBucket, jittered_retry_after
from wsgate.policy.queue import WaitQueue


def test_queue_is_fifo_and_bounded_at_n_and_n_plus_1() -> None:
    queue: WaitQueue[str] = WaitQueue(max_size=2, timeout_s=5)
    assert queue.push("a", 0.0)
    assert queue.push("b", 0.1)
    assert not queue.push("c", 0.2)  # N+1 refused
    assert queue.pop() == "a"
    assert queue.push("c", 0.3)
    assert [queue.pop(), queue.pop(), queue.pop()] == ["b", "c", None]


def test_queue_timeout_expires_only_old_waiters() -> None:
    queue: WaitQueue[int] = WaitQueue(max_size=10, timeout_s=5)
    for i in range(3):
        queue.push(i, float(i))
    assert queue.next_deadline() == 5.0
    assert queue.expired(4.999) == []
    assert queue.expired(6.0) == [0, 1]
    assert queue.oldest_wait(6.0) == 4.0
    assert queue.remove(2)
    assert len(queue) == 0 and queue.next_deadline() is None


def test_newest_is_the_tail_and_pops_from_it() -> None:
    queue: WaitQueue[str] = WaitQueue(max_size=10, timeout_s=30.0)
    assert queue.newest() is None and queue.pop_newest() is None
    queue.push("a", 1.0)
    queue.push("b", 2.0)
    queue.push_front("r", 3.0)  # a retry goes first, but is not the newest in line
    assert queue.newest() == ("b", 2.0)
    assert queue.pop_newest() == "b"
    assert queue.newest() == ("a", 1.0)
    assert [queue.pop(), queue.pop()] == ["r", "a"]


def test_a_retried_waiter_does_not_hold_back_older_ones() -> None:
    # `expired` stops at the first waiter not yet expired; a retried waiter pushed to the
    # front takes the head's (older) time, so the waiters behind it still expire on time.
    queue: WaitQueue[str] = WaitQueue(max_size=10, timeout_s=30.0)
    queue.push("a", 0.0)
    queue.push("b", 1.0)
    queue.push_front("retried", 20.0)
    assert queue.expired(35.0) == ["retried", "a", "b"]
    queue.push_front("alone", 40.0)  # an empty queue: its own time
    assert queue.next_deadline() == 70.0


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_s(0.0) == 0.5
    assert not bucket.take(0.4)
    assert bucket.take(0.5)
    assert bucket.take(10.0) and bucket.full(20.0)


def test_retry_after_is_jittered_and_at_least_one() -> None:
    rng = random.Random(7)
    values = [jittered_retry_after(10, rng) for _ in range(200)]
    assert min(values) >= 5 and max(values) <= 15
    assert len(set(values)) > 5  # spread out, not one second for everybody
    assert jittered_retry_after(0.1, rng) == 1
