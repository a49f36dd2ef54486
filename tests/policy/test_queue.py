"""The bounded FIFO of waiting handshakes (policy/queue.py): order, bounds, the front of
the line for retries, and expiry on a clock the test moves."""

from __future__ import annotations

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


def test_an_empty_queue_has_no_wait_no_head_and_nothing_to_remove() -> None:
    queue: WaitQueue[str] = WaitQueue(max_size=1, timeout_s=5)
    assert queue.peek() is None and queue.pop() is None
    assert queue.oldest_wait(100.0) == 0.0
    assert not queue.remove("nobody")
    assert queue.expired(100.0) == []


def test_peek_shows_the_head_without_taking_it() -> None:
    queue: WaitQueue[str] = WaitQueue(max_size=3, timeout_s=5)
    queue.push("a", 0.0)
    queue.push("b", 0.0)
    assert queue.peek() == "a" and len(queue) == 2
    assert queue.remove("a") and queue.peek() == "b"


def test_push_front_is_refused_when_full() -> None:
    queue: WaitQueue[str] = WaitQueue(max_size=1, timeout_s=5)
    assert queue.push("a", 0.0)
    assert not queue.push_front("retried", 1.0)
    assert [queue.pop(), queue.pop()] == ["a", None]


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
