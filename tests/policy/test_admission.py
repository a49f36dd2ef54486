"""The admission controller on a fake clock: slots, the wait queue and its timeouts,
predictive shedding, Retry-After from the drain rate, and the decisions it hands back."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest

from wsgate.policy.admission import (
    NO_DECISIONS,
    QUEUED,
    SHED_AFTER_S,
    AdmissionController,
    AdmissionSettings,
    BackendState,
    Rejected,
)
from wsgate.policy.health import HealthSettings
from wsgate.policy.outcome import Outcome

HEALTH = HealthSettings(
    rise=2,
    fall=3,
    eject_after=3,
    eject_base_s=2.0,
    eject_max_s=60.0,
    slow_start_s=0.0,
    check_interval_s=5.0,
)


class Client:
    """A handshake in want of a slot: hashable by identity, as the gateway's are."""

    def __init__(
        self, name: str, key: bytes | None = None, excluded: frozenset[BackendState] = frozenset()
    ) -> None:
        self.name = name
        self.key = key
        self.tried = excluded

    def hash_key(self) -> bytes | None:
        return self.key

    def excluded(self) -> frozenset[BackendState]:
        return self.tried

    def __repr__(self) -> str:
        return f"Client({self.name})"


Controller = AdmissionController[BackendState, Client]


def make(
    backends: int = 1,
    per_backend: int = 1,
    health: HealthSettings = HEALTH,
    **settings: Any,
) -> tuple[Controller, list[BackendState]]:
    values: dict[str, Any] = {
        "pool": "app",
        "balance": "least_conn",
        "max_handshakes": 0,
        "max_connections_per_backend": 0,
        "queue_size": 100,
        "queue_timeout_s": 30.0,
        "retry_after_s": 5.0,
        "retry_budget_ratio": 0.2,
        "retry_budget_min_per_s": 3.0,
    }
    values.update(settings)
    states = [BackendState(f"10.0.0.{i}:80", 1, health, per_backend, 0.0) for i in range(backends)]
    return AdmissionController(AdmissionSettings(**values), states, random.Random(7)), states


def clients(count: int, prefix: str = "c") -> list[Client]:
    return [Client(f"{prefix}{i}") for i in range(count)]


def causes(decisions: Sequence[tuple[Client, object]]) -> list[tuple[str, str]]:
    """Each decision as (client, backend name or rejection cause)."""
    out = []
    for client, answer in decisions:
        if isinstance(answer, Rejected):
            out.append((client.name, answer.cause))
        else:
            assert isinstance(answer, BackendState)
            out.append((client.name, answer.name))
    return out


def rejected(answer: object) -> Rejected:
    assert isinstance(answer, Rejected), answer
    return answer


# -- slots ---------------------------------------------------------------------------------
def test_each_backend_gives_its_slots_then_the_line_starts() -> None:
    admission, (b0, b1) = make(backends=2, per_backend=2)
    c = clients(5)
    granted = [admission.admit(client, 0.0) for client in c[:4]]
    assert sorted(b.name for b in granted if isinstance(b, BackendState)) == [
        b0.name,
        b0.name,
        b1.name,
        b1.name,
    ]
    assert (b0.inflight, b1.inflight, admission.inflight) == (2, 2, 4)
    assert admission.admit(c[4], 0.0) is QUEUED
    assert len(admission.queue) == 1


def test_the_pool_wide_limit_holds_even_with_a_free_backend() -> None:
    admission, _ = make(backends=2, per_backend=5, max_handshakes=1)
    c = clients(2)
    assert admission.admit(c[0], 0.0) in admission.backends
    assert admission.admit(c[1], 0.0) is QUEUED


def test_a_released_slot_goes_to_the_waiters_first_come_first_served() -> None:
    admission, (b0,) = make()
    c = clients(4)
    assert admission.admit(c[0], 0.0) is b0
    for i, client in enumerate(c[1:], start=1):
        assert admission.admit(client, float(i)) is QUEUED
    assert causes(admission.on_done(b0, 0.1, 1, "ok", 5.0)) == [("c1", b0.name)]
    assert causes(admission.on_done(b0, 0.1, 1, Outcome.OK, 6.0)) == [("c2", b0.name)]
    assert b0.inflight == 1 and len(admission.queue) == 1


def test_with_nobody_waiting_a_release_decides_nothing_and_allocates_nothing() -> None:
    admission, (b0,) = make()
    assert admission.admit(Client("c0"), 0.0) is b0
    assert admission.on_done(b0, 0.1, 1, "ok", 1.0) is NO_DECISIONS
    assert (b0.inflight, admission.inflight) == (0, 0)


def test_a_newcomer_does_not_pass_the_line_even_when_a_slot_is_free() -> None:
    # The head waits for its sticky backend; the other backend is free.
    admission, (b0, b1) = make(backends=2, balance="consistent_hash")
    key0, key1 = keys_for(admission, b0), keys_for(admission, b1)
    assert admission.admit(Client("c0", key0), 0.0) is b0
    assert admission.admit(Client("c1", key0), 0.0) is QUEUED
    assert admission.admit(Client("c2", key1), 0.0) is QUEUED  # b1 is free: FIFO all the same
    assert b1.inflight == 0
    assert causes(admission.on_done(b0, 0.1, 1, "ok", 1.0)) == [("c1", b0.name), ("c2", b1.name)]


# -- retries go ahead of the line ----------------------------------------------------------
def test_a_retry_goes_to_the_front_of_the_line() -> None:
    admission, (b0,) = make()
    c = clients(3)
    assert admission.admit(c[0], 0.0) is b0
    assert admission.admit(c[1], 1.0) is QUEUED
    assert admission.admit(c[2], 2.0, front=True) is QUEUED
    assert causes(admission.on_done(b0, 0.1, 1, "ok", 3.0)) == [("c2", b0.name)]
    assert causes(admission.on_done(b0, 0.1, 1, "ok", 4.0)) == [("c1", b0.name)]


def test_a_retry_takes_a_free_slot_past_a_waiting_line() -> None:
    admission, (b0, b1) = make(backends=2, balance="consistent_hash")
    key0, key1 = keys_for(admission, b0), keys_for(admission, b1)
    assert admission.admit(Client("c0", key0), 0.0) is b0
    assert admission.admit(Client("c1", key0), 0.0) is QUEUED
    assert admission.admit(Client("r", key1, frozenset({b0})), 1.0, front=True) is b1


# -- the queue's bounds --------------------------------------------------------------------
def test_the_queue_takes_n_and_refuses_n_plus_1() -> None:
    admission, (b0,) = make(queue_size=2)
    c = clients(5)
    assert admission.admit(c[0], 0.0) is b0
    assert admission.admit(c[1], 0.0) is QUEUED
    assert admission.admit(c[2], 0.0) is QUEUED
    full = rejected(admission.admit(c[3], 0.0))
    assert full.cause == "overloaded_queue_full"
    assert full.detail == "2 handshakes already wait for pool app."
    assert 3 <= full.retry_after_s <= 8  # no drain rate yet: the configured 5 s, jittered
    assert rejected(admission.admit(c[4], 0.0, front=True)).cause == "overloaded_queue_full"


def test_waiters_time_out_at_their_deadline() -> None:
    admission, (b0,) = make(queue_timeout_s=30.0)
    c = clients(3)
    assert admission.next_deadline() is None
    assert admission.admit(c[0], 0.0) is b0
    assert admission.admit(c[1], 1.0) is QUEUED
    assert admission.admit(c[2], 2.0) is QUEUED
    assert admission.next_deadline() == 31.0
    assert admission.expire(30.999) == ()
    expired = admission.expire(31.0)
    assert causes(expired) == [("c1", "overloaded_queue_timeout")]
    assert rejected(expired[0][1]).detail == "Waited 30 s in pool app's queue."
    assert admission.next_deadline() == 32.0
    assert causes(admission.expire(40.0)) == [("c2", "overloaded_queue_timeout")]
    assert admission.next_deadline() is None


def test_a_waiter_that_goes_away_leaves_the_line() -> None:
    admission, (b0,) = make()
    c = clients(3)
    assert admission.admit(c[0], 0.0) is b0
    assert admission.admit(c[1], 1.0) is QUEUED
    assert admission.admit(c[2], 2.0) is QUEUED
    admission.cancel(c[1])
    admission.cancel(Client("stranger"))  # not in line: nothing happens
    assert admission.next_deadline() == 32.0
    assert causes(admission.on_done(b0, 0.1, 1, "ok", 3.0)) == [("c2", b0.name)]
    assert admission.next_deadline() is None


# -- the drain rate: predictions and Retry-After --------------------------------------------
def behind_one_slot(
    admission: Controller, backend: BackendState, waiting: Sequence[Client]
) -> None:
    """At t=0: a first client takes `backend`'s one slot, and `waiting` queue behind it."""
    assert admission.admit(Client("first"), 0.0) is backend
    for client in waiting:
        assert admission.admit(client, 0.0) is QUEUED


def saturate(admission: Controller, backend: BackendState, until: float) -> float:
    """One slot on `backend`, released once a second from t=1 to `until`, each time to the
    head of a line that a new client joins at the back: the pool stays saturated."""
    assert admission.admit(Client("first"), 0.0) is backend
    assert admission.admit(Client("second"), 0.0) is QUEUED
    assert admission.admit(Client("third"), 0.0) is QUEUED
    now = 1.0
    while now <= until:
        decisions = admission.on_done(backend, 0.1, 1, "ok", now)
        assert [type(answer) for _, answer in decisions] == [BackendState]
        assert admission.admit(Client(f"t{now:g}"), now) is QUEUED
        now += 1.0
    return now - 1.0


def test_a_newcomer_is_turned_away_when_it_would_time_out_before_its_turn() -> None:
    admission, (b0,) = make(queue_timeout_s=10.0)
    now = saturate(admission, b0, 7.0)
    rate = admission.drain.rate(now, SHED_AFTER_S)
    assert rate is not None and rate == pytest.approx(1.0, rel=0.2)
    # Slots free at `rate` per second: a newcomer at position p waits about p / rate.
    answer: object = QUEUED
    while answer is QUEUED:
        answer = admission.admit(Client("late"), now)
    predicted = rejected(answer)
    assert len(admission.queue) == math.floor(rate * 10.0)
    assert predicted.cause == "overloaded_queue_timeout"
    assert predicted.detail.startswith(
        f"{len(admission.queue)} handshakes wait ahead in pool app's queue, which completes "
    )
    assert predicted.detail.endswith("more than its queue timeout of 10 s.")
    # A retry is never turned away on a prediction: it goes to the front.
    assert admission.admit(Client("retry"), now, front=True) is QUEUED


def test_no_prediction_before_five_seconds_of_saturation() -> None:
    admission, (b0,) = make(queue_timeout_s=10.0, queue_size=1000)
    now = saturate(admission, b0, 5.0)  # measuring since t=1: 4 s
    assert admission.drain.rate(now) is not None
    assert admission.drain.rate(now, SHED_AFTER_S) is None
    for i in range(200):  # far more than 10 s of work at 1/s: all queued all the same
        assert admission.admit(Client(f"n{i}"), now) is QUEUED


def test_a_release_sheds_the_newest_waiters_that_would_time_out() -> None:
    admission, (b0,) = make(queue_timeout_s=10.0)
    c = clients(31)
    assert admission.admit(c[0], 0.0) is b0
    for client in c[1:]:
        assert admission.admit(client, 0.0) is QUEUED
    for now in range(1, 6):  # measuring from t=1: no prediction before t=6
        assert causes(admission.on_done(b0, 0.1, 1, "ok", float(now))) == [(f"c{now}", b0.name)]
    decisions = admission.on_done(b0, 0.1, 1, "ok", 6.0)
    rate = admission.drain.rate(6.0, SHED_AFTER_S)
    assert rate is not None
    # 4 s of the 10 s timeout are left: who is further back than 4 s of work goes now.
    kept = math.floor(rate * 4.0)
    assert len(admission.queue) == kept
    # Turned away newest first, told their turns in the order they came.
    assert causes(decisions) == [("c6", b0.name)] + [
        (f"c{i}", "overloaded_queue_timeout") for i in range(7 + kept, 31)
    ]


def test_waiters_shed_are_told_turns_after_the_line_that_stays() -> None:
    # 40 clients behind one slot released once a second, a 10 s timeout: at t=6 the
    # prediction starts; 4 s of work stay in line (4 waiters), and the 30 shed are told
    # turns from the end of those 4 s, one a second, not from the end of a full 10 s
    # line of which most is gone with them (the backend would idle for 6 s).
    admission, (b0,) = make(queue_timeout_s=10.0, queue_size=100)
    behind_one_slot(admission, b0, clients(40))
    for now in range(1, 6):
        admission.on_done(b0, 0.1, 1, "ok", float(now))
    decisions = admission.on_done(b0, 0.1, 1, "ok", 6.0)[1:]
    rate = admission.drain.rate(6.0, SHED_AFTER_S)
    assert rate is not None
    kept = len(admission.queue)
    assert kept == math.floor(rate * 4.0)
    waits = [rejected(answer).retry_after_s for _, answer in decisions]
    assert len(waits) == 40 - 6 - kept
    assert waits == sorted(waits)
    assert waits[0] <= kept / rate + 1  # right after the line that stays
    assert waits[-1] >= len(waits) / rate  # and one per 1 / rate after that
    first = rejected(decisions[0][1])
    assert first.detail.startswith(f"{kept} handshakes wait ahead")


def test_retry_after_follows_the_line_once_the_rate_is_known() -> None:
    admission, (b0,) = make(queue_size=20, queue_timeout_s=1000.0)
    behind_one_slot(admission, b0, clients(20))
    early = rejected(admission.admit(Client("early"), 0.0))
    assert early.cause == "overloaded_queue_full"
    assert 3 <= early.retry_after_s <= 8  # the configured 5 s, jittered
    for now in range(1, 8):
        admission.on_done(b0, 0.1, 1, "ok", float(now))
        assert admission.admit(Client(f"t{now}"), float(now)) is QUEUED
    rate = admission.drain.rate(7.0)
    assert rate is not None
    late = rejected(admission.admit(Client("late"), 7.0))
    # 20 ahead at about 1/s: come back in about 20 s (jittered by half), not in 5.
    assert 0.5 * 20 / rate - 1 <= late.retry_after_s <= 1.5 * 20 / rate + 1
    assert late.retry_after_s > 8


# -- consistent hashing --------------------------------------------------------------------
def keys_for(admission: Controller, backend: BackendState) -> bytes:
    """A hash key that the balancer sends to `backend`."""
    for i in range(1000):
        key = f"user-{i}".encode()
        if admission.pick_for_request(0.0, frozenset(), key) is backend:
            return key
    raise AssertionError("no key for " + backend.name)


def test_a_sticky_handshake_waits_for_its_own_backend() -> None:
    admission, (b0, b1) = make(backends=2, balance="consistent_hash")
    key = keys_for(admission, b0)
    for _ in range(3):  # the same key, the same backend, each time
        assert admission.admit(Client("c", key), 0.0) is b0
        admission.on_done(b0, 0.1, 1, "ok", 0.0)
    assert admission.admit(Client("c0", key), 1.0) is b0
    assert admission.admit(Client("c1", key), 1.0) is QUEUED  # not b1, which is free
    assert b1.inflight == 0
    assert causes(admission.on_done(b0, 0.1, 1, "ok", 2.0)) == [("c1", b0.name)]


# -- connection limits and health ------------------------------------------------------------
def test_every_backend_at_max_connections_is_at_capacity() -> None:
    admission, (b0, b1) = make(backends=2, per_backend=5, max_connections_per_backend=1)
    admission.tunnel_opened(b0)
    assert admission.admit(Client("c0"), 0.0) is b1  # b0 holds its 1 connection
    answer = rejected(admission.admit(Client("c1"), 0.0))
    assert answer.cause == "at_capacity"
    assert answer.detail == "Every backend of pool app holds 1 connections."
    assert 3 <= answer.retry_after_s <= 8


def test_a_closed_tunnel_makes_room_for_the_head_of_the_line() -> None:
    admission, (b0,) = make(max_connections_per_backend=2)
    assert admission.admit(Client("c0"), 0.0) is b0
    assert admission.admit(Client("c1"), 0.0) is QUEUED
    admission.tunnel_opened(b0)
    admission.tunnel_opened(b0)
    assert admission.on_done(b0, 0.1, 1, "ok", 1.0) == ()  # a free slot, no free connection
    assert causes(admission.tunnel_closed(b0, 2.0)) == [("c1", b0.name)]
    assert admission.tunnel_closed(b0, 3.0) is NO_DECISIONS


def test_no_healthy_upstream_when_every_backend_is_tried_or_out() -> None:
    admission, (b0, b1) = make(backends=2)
    answer = rejected(admission.admit(Client("c0", excluded=frozenset({b0, b1})), 0.0))
    assert answer.cause == "no_healthy_upstream"
    assert answer.detail == "Pool app: no backend is up."
    assert admission.pick_for_request(0.0, frozenset({b0, b1}), None) is None


def test_a_failure_that_ejects_the_last_backend_turns_its_waiter_away() -> None:
    health = dataclasses.replace(HEALTH, eject_after=1)
    admission, _ = make(backends=2, health=health)
    b0 = admission.admit(Client("c0"), 0.0)
    b1 = admission.admit(Client("c1"), 0.0)
    assert isinstance(b0, BackendState) and isinstance(b1, BackendState) and b0 is not b1
    # A retry that has tried b1 already waits for b0; b0's handshake fails.
    assert admission.admit(Client("r", excluded=frozenset({b1})), 0.0) is QUEUED
    assert causes(admission.on_done(b0, 0.1, 1, Outcome.FAILED, 1.0)) == [
        ("r", "no_healthy_upstream")
    ]
    assert admission.ejected == [b0]
    assert b0.health.ejected_until == 3.0
    assert not b0.health.available(2.0) and b0.health.available(3.0)


def test_what_each_outcome_teaches() -> None:
    admission, (b0,) = make(per_backend=0)  # adaptive limit
    limit = b0.limiter.value
    for outcome in ("aborted", Outcome.ABORTED):
        assert admission.admit(Client("a"), 0.0) is b0
        admission.on_done(b0, 5.0, 1, outcome, 1.0)
    assert (b0.limiter.value, b0.health.failures) == (limit, 0)
    assert admission.admit(Client("d"), 0.0) is b0
    admission.on_done(b0, 5.0, 1, "dropped", 1.0)
    assert b0.limiter.value < limit and b0.health.failures == 1
    assert admission.admit(Client("f"), 0.0) is b0
    admission.on_done(b0, 0.1, 1, "failed", 1.0)
    assert b0.health.failures == 2
    assert admission.admit(Client("o"), 0.0) is b0
    admission.on_done(b0, 0.1, 1, "ok", 1.0)
    assert b0.health.failures == 0 and admission.ejected == []


def test_failures_and_checks_reported_by_the_adapter() -> None:
    admission, (b0,) = make()
    assert [admission.on_failure(b0, 1.0) for _ in range(3)] == [False, False, True]
    assert admission.ejected == [b0]
    admission.on_success(b0, 4.0)
    assert b0.health.failures == 0
    assert [admission.on_check(b0, False, 5.0) for _ in range(3)] == [False, False, True]
    assert not b0.health.up
    assert [admission.on_check(b0, True, 6.0) for _ in range(2)] == [False, True]


# -- draining ------------------------------------------------------------------------------
def test_turn_away_all_empties_the_line_and_queues_nobody_after() -> None:
    admission, (b0,) = make()
    c = clients(5)
    assert admission.admit(c[0], 0.0) is b0
    assert admission.admit(c[1], 1.0) is QUEUED
    assert admission.admit(c[2], 2.0) is QUEUED
    decisions = admission.turn_away_all(3.0)
    assert causes(decisions) == [("c1", "shutting_down"), ("c2", "shutting_down")]
    assert rejected(decisions[0][1]).detail == (
        "The gateway is draining: pool app queues no more handshakes."
    )
    assert admission.next_deadline() is None
    assert rejected(admission.admit(c[3], 4.0)).cause == "shutting_down"
    # A handshake that holds its slot goes on, and a free slot is still given.
    assert admission.on_done(b0, 0.1, 1, "ok", 5.0) is NO_DECISIONS
    assert admission.admit(c[4], 6.0) is b0
    assert admission.turn_away_all(7.0) == []


def test_no_backend_up_says_come_back_when_the_first_one_should_be_back() -> None:
    # Both backends ejected for 2 s: the Retry-After follows the ejection, not the 5 s
    # base, so a backend restart of a second does not keep clients away for 3-8 s.
    health = dataclasses.replace(HEALTH, eject_after=1)
    admission, _ = make(backends=2, health=health, retry_after_s=5.0)
    for backend in admission.backends:
        backend.health.on_failure(0.0)
    answers = [rejected(admission.admit(Client(f"c{i}"), 0.5)) for i in range(50)]
    assert {a.cause for a in answers} == {"no_healthy_upstream"}
    assert {a.retry_after_s for a in answers} <= {1, 2, 3}  # 1.5 s, jittered by half
    assert max(a.retry_after_s for a in answers) <= 3
    # Down by its checks and none passed yet: rise (2) checks 5 s apart, capped at 5 s.
    for backend in admission.backends:
        for t in (1.0, 2.0, 3.0):
            backend.health.on_check(False, t)
    answers = [rejected(admission.admit(Client(f"d{i}"), 3.0)) for i in range(50)]
    assert {a.retry_after_s for a in answers} <= set(range(3, 9))


def test_waiters_that_time_out_together_are_told_turns_from_now_not_after_each_other() -> None:
    # 40 clients queued behind one slot released once a second: by t=4.5, 4 are served
    # and the 36 left run out of time together. Each is told its own turn, one per second
    # (the rate), from now: the line they waited in runs out with them, and counting it
    # again would keep the backend idle for 36 s while all of them wait.
    admission, (b0,) = make(queue_size=100, queue_timeout_s=4.5)
    behind_one_slot(admission, b0, clients(40))
    for now in range(1, 5):
        admission.on_done(b0, 0.1, 1, "ok", float(now))
    rate = admission.drain.rate(4.5)
    assert rate is not None and rate == pytest.approx(1.0, rel=0.25)
    decisions = admission.expire(4.5)
    waits = [rejected(answer).retry_after_s for _, answer in decisions]
    assert len(waits) == 36
    assert {rejected(answer).cause for _, answer in decisions} == {"overloaded_queue_timeout"}
    assert waits == sorted(waits)  # in the order they waited
    assert waits[0] <= 3  # the first comes back at once, not after the 35 others
    assert 36 / rate - 3 <= waits[-1] <= 36 / rate + 3  # and the last as the rate allows


def test_a_turn_within_the_second_is_retry_after_0() -> None:
    # A full line of 2 at 10 handshakes/s is gone in 0.2 s: the client turned away is told
    # 0 (come back now; its own spread of up to a second puts it about at its turn), not
    # a whole second that leaves the line empty meanwhile.
    admission, (b0,) = make(queue_size=2, queue_timeout_s=30.0)
    behind_one_slot(admission, b0, [Client("w1"), Client("w2")])
    now = 0.0
    for _ in range(30):  # 3 s at 10/s, the line kept full
        now += 0.1
        admission.on_done(b0, 0.1, 1, "ok", now)
        assert admission.admit(Client(f"t{now:.1f}"), now) is QUEUED
    rate = admission.drain.rate(now)
    assert rate is not None and rate == pytest.approx(10.0, rel=0.25)
    full = rejected(admission.admit(Client("late"), now))
    assert full.cause == "overloaded_queue_full"
    assert full.retry_after_s == 0
