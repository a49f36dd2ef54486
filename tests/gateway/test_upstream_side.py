"""The backend side of a client connection (gateway/upstream_side.py): the pool's answers
and the upstream connection's events delivered to the active exchange, and late ones, for
a request that is over, dropped or given back. Literal events in, literal commands out."""

from __future__ import annotations

from typing import Any, cast

from tests.gateway.fakes import GET, UPGRADE, make, sized, upstream_bytes
from wsgate.gateway.commands import OpenUpstream, ReleaseUpstream, SendToClient, Wakeup
from wsgate.gateway.states import Stage
from wsgate.gateway.upstream_side import UpstreamSide
from wsgate.policy.admission import QUEUED

B1 = "127.0.0.1:9001"


def test_a_slot_for_a_connection_with_no_request_is_given_back_as_aborted() -> None:
    core, pool, _ = make()
    assert core.start(0.0, over_capacity=False) == [Wakeup(10.0)]
    assert UpstreamSide(core).admitted(cast(Any, pool.backends[0]), 1.0) == []
    assert pool.calls == [("done", B1, "aborted")]


def test_a_connection_ready_after_the_request_is_over_goes_back_to_the_pool() -> None:
    core, _, _ = make()
    core.start(0.0, over_capacity=False)
    assert UpstreamSide(core).upstream_ready(0.4, 1.0) == [ReleaseUpstream(reuse=True)]


def test_late_events_without_an_exchange_do_nothing() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    side = UpstreamSide(core)
    assert side.rejected("overloaded_queue_timeout", "Waited.", 3, 1.0) == []
    assert side.upstream_failed("upstream_connect_refused", "Refused.", 1.0) == []
    assert side.response_head(200, b"OK", "1.1", sized(), True, 1.0) == []
    assert side.response_body(b"ok") == []
    assert side.response_complete(1.0) == []
    assert side.upstream_eof(1.0) == []
    assert side.upstream_lost("reset", 1.0) == []
    assert side.upstream_bad_response("bad", "upstream_bad_response", 1.0) == []
    assert side.hash_key() is None and side.excluded() == frozenset()
    assert pool.calls == []


def test_events_reach_the_exchange_and_time_moves_with_them() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    out = core.client_data(GET, 0.5)
    assert OpenUpstream(pool.backends[0], head_request=False, head_limit=65536) in out
    side = UpstreamSide(core)
    assert side.excluded() == frozenset({cast(Any, pool.backends[0])})
    out = side.upstream_ready(None, 2.0)
    assert upstream_bytes(out).startswith(b"GET /page HTTP/1.1\r\n")
    assert core.now == 2.0 and out[-1] == Wakeup(62.0)  # the response timeout from now
    out = side.response_head(200, b"OK", "1.1", sized(), True, 2.5)
    assert SendToClient(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n") in out
    assert side.response_body(b"ok") == [SendToClient(b"ok")]
    out = side.response_complete(3.0)
    assert ReleaseUpstream(reuse=True) in out
    assert core.exchange is None or core.exchange.stage is Stage.DONE


def test_a_slot_from_the_queue_opens_the_connection() -> None:
    core, pool, _ = make()
    pool.answers = [QUEUED]
    core.start(0.0, over_capacity=False)
    assert not any(isinstance(c, OpenUpstream) for c in core.client_data(UPGRADE, 0.5))
    out = UpstreamSide(core).admitted(cast(Any, pool.backends[1]), 1.0)
    assert OpenUpstream(pool.backends[1], head_request=False, head_limit=65536) in out
