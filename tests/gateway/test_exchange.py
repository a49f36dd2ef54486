"""One request's trip (gateway/exchange.py), driven directly through a fake ExchangeHost
(ports.py) and the fake pool of fakes.py: admission, queueing and rejection, the pick,
retries within the attempt count and the retry budget, the response timeout, a wrong
accept and the 101 handover. Literal calls in, literal commands and failures out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from tests.gateway.fakes import KEY, FakeGateway, FakePool, make, sized, switching
from wsgate.gateway.commands import (
    Command,
    Log,
    OpenUpstream,
    ReleaseUpstream,
    SendToClient,
    SendToUpstream,
)
from wsgate.gateway.exchange import Exchange
from wsgate.gateway.states import BadTransitionError, Request, Stage
from wsgate.policy.admission import QUEUED, Rejected
from wsgate.policy.retry import RetryBudget
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import HeaderList

B1, B2 = "127.0.0.1:9001", "127.0.0.1:9002"


class TriedWaiter:
    """The pool's waiter: the fake pool admits to a backend this request has not tried."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def excluded(self) -> frozenset[Any]:
        return frozenset(self.request.tried)


@dataclass
class FakeHost:
    """The connection an exchange talks to: what it is told is recorded."""

    gw: FakeGateway
    waiter: Any = None
    client_ip: str = "192.0.2.7"
    scheme: str = "http"
    now: float = 0.0
    keep: bool = True
    commands: list[Command] = field(default_factory=list)
    failures: list[tuple[str, str, int | None]] = field(default_factory=list)
    aborts: int = 0
    answers: list[Request] = field(default_factory=list)
    tunnels: list[Any] = field(default_factory=list)
    flowing: int = 0

    def fail(self, cause: str, detail: str, *, retry_after_s: int | None = None) -> None:
        self.failures.append((cause, detail, retry_after_s))

    def abort(self) -> None:
        self.aborts += 1

    def keep_alive_allowed(self) -> bool:
        return self.keep

    def answered(self, request: Request) -> None:
        self.answers.append(request)

    def tunnel_opened(self, backend: Any) -> None:
        self.tunnels.append(backend)

    def body_flowing(self) -> None:
        self.flowing += 1

    def take(self) -> list[Command]:
        out, self.commands[:] = self.commands[:], []
        return out


def exchange(
    method: bytes = b"GET",
    *,
    ws_key: bytes | None = None,
    framing: Framing = Framing.NONE,
    **pool: Any,
) -> tuple[Exchange, FakeHost, FakePool]:
    _, fake, gw = make(**pool)
    request = Request(
        method, b"/x", "1.1", HeaderList(), True, framing, 0.0, ws_key=ws_key, upgrade=bool(ws_key)
    )
    request.pool = cast(Any, fake)
    request.request_id = "rid"
    request.complete = True
    host = FakeHost(gw, waiter=TriedWaiter(request))
    return Exchange(cast(Any, host), request), host, fake


def stage_of(ex: Exchange) -> Stage:
    # A call, so that the type checker does not keep a stage narrowed across a move.
    return ex.stage


def opens(commands: list[Command]) -> list[tuple[str, bool]]:
    return [(c.backend.name, c.fresh) for c in commands if isinstance(c, OpenUpstream)]


def events(commands: list[Command]) -> list[tuple[str, Any, Any]]:
    return [
        (c.name, c.fields["backend"], c.fields["cause"])
        for c in commands
        if isinstance(c, Log) and c.kind == "event"
    ]


# -- a backend for the request ---------------------------------------------------------
def test_a_handshake_admitted_at_once_holds_the_slot_and_opens() -> None:
    ex, host, pool = exchange(ws_key=KEY)
    host.now = 3.0
    ex.begin()
    assert pool.calls == [("admit", False)]
    out = host.take()
    assert len(out) == 1 and opens(out) == [(B1, False)]
    assert out[0] == OpenUpstream(pool.backends[0], head_request=False, head_limit=65536)
    assert ex.request.slot is cast(Any, pool.backends[0]) and ex.request.slot_since == 3.0
    assert ex.stage is Stage.WAITING


def test_a_queued_handshake_waits_then_gets_its_slot() -> None:
    ex, host, pool = exchange(ws_key=KEY)
    pool.answers = [QUEUED]
    host.now = 1.5
    ex.begin()
    assert host.take() == [] and ex.request.queued_at == 1.5
    ex.admitted(cast(Any, pool.backends[1]))
    assert opens(host.take()) == [(B2, False)]
    ex.release()  # the client went away while it still held its place and slot
    assert pool.calls[-2:] == [("cancel",), ("done", B2, "aborted")]


def test_a_rejected_handshake_is_failed_with_the_pools_words() -> None:
    ex, host, pool = exchange(ws_key=KEY)
    pool.answers = [Rejected("overloaded_queue_full", "Queue full.", 4)]
    ex.begin()
    assert host.failures == [("overloaded_queue_full", "Queue full.", 4)]
    assert host.take() == []


def test_a_rejection_after_queueing_and_a_late_one_after_the_slot() -> None:
    ex, host, pool = exchange(ws_key=KEY)
    pool.answers = [QUEUED]
    ex.begin()
    ex.rejected("overloaded_queue_timeout", "Waited 10 s.", 6)
    assert host.failures == [("overloaded_queue_timeout", "Waited 10 s.", 6)]
    late, late_host, _ = exchange(ws_key=KEY)
    late.begin()
    late.ready(None)
    late.rejected("overloaded_queue_timeout", "Waited 10 s.", 6)  # not waiting: ignored
    assert late_host.failures == []


def test_a_plain_request_is_picked_without_a_slot() -> None:
    ex, host, pool = exchange()
    ex.begin()
    assert pool.calls == [] and opens(host.take()) == [(B1, False)]
    assert ex.request.slot is None and ex.request.tried == {cast(Any, pool.backends[0])}


def test_no_backend_to_pick_is_no_healthy_upstream() -> None:
    ex, host, _pool = exchange(backends=0)
    ex.begin()
    assert host.failures == [("no_healthy_upstream", "Pool app: no backend is up.", 5)]


# -- forwarding ------------------------------------------------------------------------
def test_ready_sends_the_head_and_the_held_body_then_waits_for_the_answer() -> None:
    ex, host, _pool = exchange(b"POST", framing=Framing.CHUNKED)
    ex.request.body = [b"abc", b"de"]
    host.now = 2.0
    ex.begin()
    host.take()
    ex.ready(0.8)
    out = host.take()
    assert [c.data for c in out if isinstance(c, SendToUpstream)][1:] == [
        b"3\r\nabc\r\n",
        b"2\r\nde\r\n",
        b"0\r\n\r\n",
    ]
    assert ex.stage is Stage.FORWARDED and ex.request.connect_ms == 0.8
    assert ex.response_deadline == 62.0 and host.flowing == 1
    assert ex.request.body == [] and ex.request.buffered == 0


# -- retries ---------------------------------------------------------------------------
def test_a_closed_connection_is_retried_on_the_other_backend() -> None:
    ex, host, pool = exchange()
    ex.begin()
    ex.ready(0.5)  # a fresh connection: not the stale keep-alive case
    host.take()
    ex.upstream_lost("reset")
    out = host.take()
    assert events(out) == [("upstream_attempt", B1, "upstream_closed_early")]
    assert opens(out) == [(B2, False)]
    assert pool.calls == [("failure", B1)]
    assert ex.stage is Stage.WAITING and ex.request.attempts == 2
    assert host.failures == []


def test_a_stale_keep_alive_connection_is_tried_once_more_fresh_on_the_same_backend() -> None:
    ex, host, pool = exchange()
    ex.begin()
    ex.ready(None)  # a reused connection
    host.take()
    ex.upstream_lost("")
    assert opens(host.take()) == [(B1, True)]
    assert ex.request.attempts == 1 and pool.calls == []


def test_no_retry_when_the_budget_is_spent() -> None:
    ex, host, pool = exchange()
    pool.budget = RetryBudget(ratio=0.0, min_per_s=0.0)
    ex.begin()
    ex.ready(0.5)
    host.take()
    ex.upstream_lost("reset")
    assert opens(host.take()) == []
    assert host.failures == [
        ("upstream_closed_early", f"Backend {B1} closed the connection (reset).", None)
    ]


def test_no_retry_past_the_pools_retries() -> None:
    ex, host, pool = exchange(retries=0)
    ex.begin()
    ex.connect_failed("upstream_connect_refused", "Refused.")
    assert host.failures == [("upstream_connect_refused", "Refused.", None)]
    assert pool.calls == [("failure", B1)]


def test_a_streamed_post_is_not_sent_again() -> None:
    ex, host, _pool = exchange(b"POST", framing=Framing.LENGTH)
    ex.begin()
    ex.ready(0.5)
    host.take()
    ex.upstream_lost("")
    assert opens(host.take()) == []
    assert host.failures == [
        ("upstream_closed_early", f"Backend {B1} closed the connection.", None)
    ]


def test_a_failed_handshake_goes_to_the_front_of_the_line_elsewhere() -> None:
    ex, host, pool = exchange(ws_key=KEY)
    ex.begin()
    ex.connect_failed("upstream_connect_timeout", "Timed out.")
    # The slot's release counts the failure ("dropped" for a timeout), then a new admit.
    assert pool.calls == [("admit", False), ("done", B1, "dropped"), ("admit", True)]
    assert opens(host.take()) == [(B1, False), (B2, False)]


def test_out_of_descriptors_is_neither_retried_nor_the_backends_fault() -> None:
    ex, host, pool = exchange(ws_key=KEY)
    ex.begin()
    ex.connect_failed("out_of_file_descriptors", "EMFILE.")
    assert host.failures == [("out_of_file_descriptors", "EMFILE.", 5)]
    assert pool.calls == [("admit", False), ("done", B1, "aborted")]


# -- the answer ------------------------------------------------------------------------
def test_the_response_timeout_fails_and_counts_against_the_backend() -> None:
    ex, host, pool = exchange()
    ex.begin()
    ex.ready(0.5)
    ex.response_timeout()
    assert host.failures == [
        ("upstream_handshake_timeout", f"Backend {B1} sent no response head within 60 s.", None)
    ]
    assert pool.calls == [("failure", B1)] and ex.response_deadline is None


def test_an_answer_is_relayed_and_the_connection_given_back() -> None:
    ex, host, pool = exchange()
    ex.begin()
    ex.ready(0.5)
    host.take()
    ex.response_head(200, b"OK", sized(b"ok"), True)
    ex.response_body(b"ok")
    ex.response_complete()
    assert host.take() == [
        SendToClient(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
        SendToClient(b"ok"),
        ReleaseUpstream(reuse=True),
    ]
    assert pool.calls == [("success", B1)]
    assert ex.stage is Stage.DONE and host.answers == [ex.request]


def test_a_5xx_to_a_handshake_is_retried_elsewhere() -> None:
    ex, host, _pool = exchange(ws_key=KEY, retry_on_status=(502,))
    ex.begin()
    ex.ready(0.5)
    host.take()
    ex.response_head(502, b"Bad Gateway", sized(), True)
    out = host.take()
    assert ReleaseUpstream() in out and opens(out) == [(B2, False)]
    assert host.failures == [] and not any(isinstance(c, SendToClient) for c in out)


def test_a_wrong_accept_is_a_502_and_the_backends_fault() -> None:
    ex, host, pool = exchange(ws_key=KEY)
    ex.begin()
    ex.ready(0.5)
    ex.response_head(101, b"Switching Protocols", switching(b"x" * 24), True)
    assert [cause for cause, _, _ in host.failures] == ["upstream_bad_accept"]
    assert pool.calls[-1] == ("done", B1, "failed")
    assert host.tunnels == []


def test_a_101_to_a_plain_request_is_refused() -> None:
    ex, host, _ = exchange()
    ex.begin()
    ex.ready(0.5)
    ex.response_head(101, b"Switching Protocols", switching(), True)
    assert host.failures == [
        ("upstream_bad_response", "Backend answered 101 to a plain request.", None)
    ]


def test_the_101_handover() -> None:
    ex, host, pool = exchange(ws_key=KEY)
    ex.begin()
    ex.ready(0.5)
    host.take()
    ex.response_head(101, b"Switching Protocols", switching(), True)
    out = host.take()
    assert isinstance(out[0], SendToClient)
    assert out[0].data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    # The tunnel is counted before the slot frees (the next waiter must see it).
    assert pool.calls[-2:] == [("tunnel_opened", B1), ("done", B1, "ok")]
    assert host.tunnels == [pool.backends[0]] and ex.request.status == 101
    assert ex.stage is Stage.UPGRADING and ex.answer_started
    ex.switch()
    assert stage_of(ex) is Stage.SWITCHED and not ex.has_upstream
    ex.end()
    assert stage_of(ex) is Stage.SWITCHED  # the tunnel outlives the exchange


def test_a_lost_upstream_after_the_101_aborts_the_client() -> None:
    ex, host, _ = exchange(ws_key=KEY)
    ex.begin()
    ex.ready(0.5)
    ex.response_head(101, b"Switching Protocols", switching(), True)
    ex.upstream_lost("reset")
    assert host.aborts == 1 and host.failures == []


def test_a_stage_the_table_forbids_raises() -> None:
    ex, _, _ = exchange(ws_key=KEY)
    with pytest.raises(BadTransitionError, match=r"^exchange WAITING -> SWITCHED$"):
        ex.switch()  # no 101 was relayed
