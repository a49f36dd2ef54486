"""The backend choice (gateway/backend_choice.py) alone: the slot given back with the
backend's time to answer, a failed attempt counted once (through the slot or on the
backend), whether a retry could go anywhere, and a failed attempt's log line, retry
budget and reset. The Exchange's playbooks (test_exchange.py) drive the same functions
through their stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from tests.gateway.fakes import FakeGateway, FakePool, make
from wsgate.gateway.backend_choice import (
    another_backend_left,
    attempt_failed,
    count_failure,
    release_slot,
)
from wsgate.gateway.commands import Command, Log
from wsgate.gateway.states import Request
from wsgate.policy.retry import RetryBudget
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import HeaderList


@dataclass
class Host:
    """What the backend choice reads of its connection (a part of ExchangeHost)."""

    gw: FakeGateway
    client_ip: str = "192.0.2.7"
    now: float = 0.0
    failures: list[tuple[str, str, int | None]] = field(default_factory=list)

    def fail(self, cause: str, detail: str, *, retry_after_s: int | None = None) -> None:
        self.failures.append((cause, detail, retry_after_s))


def request_to(method: bytes = b"GET", **pool: Any) -> tuple[Request, FakePool, Host]:
    _, fake, gw = make(**pool)
    request = Request(method, b"/x", "1.1", HeaderList(), True, Framing.NONE, 0.0)
    request.pool = cast(Any, fake)
    request.request_id = "rid"
    return request, fake, Host(gw)


def test_a_slot_given_back_reports_the_time_since_it_was_taken_once() -> None:
    request, pool, _ = request_to()
    backend = pool.backends[0]
    done: list[tuple[float, int, str]] = []

    def handshake_done(backend: object, rtt: float, inflight: int, outcome: str) -> None:
        done.append((rtt, inflight, outcome))

    cast(Any, pool).handshake_done = handshake_done
    request.slot, request.slot_since, request.slot_inflight = cast(Any, backend), 2.0, 3
    release_slot(request, 2.5, "ok")
    release_slot(request, 9.0, "aborted")  # nothing held any more
    assert done == [(0.5, 3, "ok")] and request.slot is None


def test_a_failure_is_counted_through_the_slot_when_one_is_held() -> None:
    request, pool, _ = request_to()
    backend = pool.backends[0]
    request.slot = request.backend = cast(Any, backend)
    count_failure(request, 1.0, "dropped")
    assert pool.calls == [("done", backend.name, "dropped")]


def test_a_failure_without_a_slot_is_counted_on_the_backend_unless_aborted() -> None:
    request, pool, _ = request_to()
    backend = pool.backends[0]
    request.backend = cast(Any, backend)
    count_failure(request, 1.0, "aborted")
    assert pool.calls == []
    count_failure(request, 1.0, "failed")
    assert pool.calls == [("failure", backend.name)]


def test_a_retry_needs_an_attempt_left_and_an_untried_backend() -> None:
    request, pool, _ = request_to(retries=1)
    assert another_backend_left(request, 0.0)
    request.tried = {cast(Any, b) for b in pool.backends}
    assert not another_backend_left(request, 0.0)
    request.tried = {cast(Any, pool.backends[0])}
    request.attempts = 2  # the one retry was spent
    assert not another_backend_left(request, 0.0)


def test_a_failed_attempt_is_logged_and_the_request_made_ready_for_another() -> None:
    request, pool, host = request_to(retries=1)
    backend = pool.backends[0]
    request.backend, request.head_sent, request.connect_ms = cast(Any, backend), True, 0.4
    out: list[Command] = []
    again = attempt_failed(
        request, cast(Any, host), out, "upstream_closed_early", "gone", outcome="failed"
    )
    assert again and request.attempts == 2
    assert not request.head_sent and request.connect_ms is None
    assert request.last_failure == ("upstream_closed_early", "gone")
    assert pool.calls == [("failure", backend.name)]
    assert out == [
        Log(
            "event",
            "upstream_attempt",
            {
                "request_id": "rid",
                "client": "192.0.2.7",
                "pool": "app",
                "backend": "127.0.0.1:9001",
                "attempt": 1,
                "cause": "upstream_closed_early",
            },
        )
    ]
    # The attempts are spent now: counted and logged, but no other try.
    assert not attempt_failed(
        request, cast(Any, host), out, "upstream_closed_early", "gone", outcome="failed"
    )
    assert request.attempts == 2 and len(out) == 2


def test_no_retry_when_the_body_is_gone_or_the_budget_is_spent() -> None:
    request, pool, host = request_to(b"POST", retries=2)
    request.framing, request.head_sent = Framing.CHUNKED, True  # its body was streamed
    assert not attempt_failed(request, cast(Any, host), [], "c", "d", outcome="failed")
    request, pool, host = request_to(retries=2)
    pool.budget = RetryBudget(0.0, 0.0)  # no retry allowed at all
    assert not attempt_failed(request, cast(Any, host), [], "c", "d", outcome="failed")
    assert request.attempts == 1
