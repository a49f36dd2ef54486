"""Playbooks for the client's side of a connection (gateway/client_side.py): what the
reader finds, the pipelined requests, reading paused and resumed, and the client's
deadlines. Literal bytes in, literal commands out, time moved by the test, through a
`ClientCore` (the side is its base) and its `UpstreamSide`.

The stalled body (d5) and the pipelined head over the limit (d10) are in test_core.py,
beside the other twins of the hardening tests."""

from __future__ import annotations

from tests.gateway.fakes import (
    GET,
    UPGRADE,
    make,
    sent,
    sized,
    status_and_cause,
    switching,
    upstream_bytes,
    without_logs,
)
from wsgate.config.model import ServerConfig
from wsgate.gateway.client_side import MAX_PIPELINED_REQUESTS
from wsgate.gateway.commands import (
    CallSoon,
    ClientReading,
    CloseClient,
    Command,
    OpenUpstream,
    ReleaseUpstream,
    SendToClient,
    SendToUpstream,
    StartTunnel,
    Wakeup,
)
from wsgate.gateway.core import ClientCore
from wsgate.gateway.upstream_side import UpstreamSide

CHUNKED = b"POST /up HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"


def answer_ok(core: ClientCore, now: float) -> list[Command]:
    """The backend takes the active request and answers 200 "ok" in full."""
    side = UpstreamSide(core)
    side.upstream_ready(None, now)
    side.response_head(200, b"OK", "1.1", sized(), True, now)
    side.response_body(b"ok")
    return without_logs(side.response_complete(now))


def test_a_full_pipeline_pauses_reading_until_a_request_is_taken() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    # One request is answered, MAX_PIPELINED_REQUESTS wait: the last one fills the line.
    out = core.client_data(GET * (MAX_PIPELINED_REQUESTS + 1), 0.1)
    backend = pool.backends[0]
    assert out == [
        OpenUpstream(backend, head_request=False, head_limit=65536),
        ClientReading(False),
        Wakeup(None),
    ]
    assert answer_ok(core, 0.2) == [ReleaseUpstream(reuse=True), CallSoon()]
    assert core.proceed(0.3) == [
        ClientReading(True),  # a place in line is free again
        OpenUpstream(backend, head_request=False, head_limit=65536),
    ]


def test_a_keep_alive_connection_that_wakes_up_gets_the_header_timeout_from_then() -> None:
    core, _, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(GET, 0.1)
    assert answer_ok(core, 0.3) == [ReleaseUpstream(reuse=True), Wakeup(75.3)]
    # A head begins at 40 s: the keep-alive deadline is gone, the 10 s header timeout runs.
    assert core.client_data(b"GET /next HTTP/1.1\r\n", 40.0) == [Wakeup(50.0)]
    out = core.timer(50.0)
    assert status_and_cause(sent(out)) == (408, "header_timeout")
    assert out[-1] == CloseClient()


def test_a_body_buffered_for_a_backend_not_there_yet_pauses_reading_past_the_high_water() -> None:
    core, _, _ = make(server=ServerConfig(access_log=False, tunnel_high_water_bytes=10))
    core.start(0.0, over_capacity=False)
    head = b"POST /up HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 20\r\n\r\n"
    out = core.client_data(head + b"x" * 12, 0.1)
    assert out[1:] == [ClientReading(False), Wakeup(30.1)]  # the body timeout runs
    # The connection is there: the held body goes first, and the client may send on.
    out = UpstreamSide(core).upstream_ready(None, 0.2)
    assert upstream_bytes(out).endswith(b"\r\n\r\n" + b"x" * 12)
    assert out[-1] == ClientReading(True)
    # The body is whole: its deadline ends and the backend's response timeout (60 s) runs.
    assert core.client_data(b"y" * 8, 0.3) == [SendToUpstream(b"y" * 8), Wakeup(60.3)]


def test_bytes_held_behind_a_handshake_pause_reading_past_the_high_water() -> None:
    core, _, _ = make(server=ServerConfig(access_log=False, tunnel_high_water_bytes=10))
    core.start(0.0, over_capacity=False)
    out = core.client_data(UPGRADE + b"x" * 11, 0.1)
    assert out[1:] == [ClientReading(False), Wakeup(None)]  # no body timeout for them
    side = UpstreamSide(core)
    side.upstream_ready(None, 0.2)
    side.response_head(101, b"Switching Protocols", "1.1", switching(), True, 0.3)
    out = side.upstream_upgrade(b"", 0.4)
    # The tunnel takes the held bytes, and reading resumes for it.
    assert out[0] == ClientReading(True)
    assert isinstance(out[1], StartTunnel) and out[1].early == b"x" * 11


def test_a_body_that_breaks_the_rules_while_its_answer_streams_aborts() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(CHUNKED + b"2\r\nok\r\n", 0.1)
    side = UpstreamSide(core)
    side.upstream_ready(None, 0.1)
    side.response_head(200, b"OK", "1.1", sized(), True, 0.2)
    # Part of the answer is with the client: no error answer can follow it.
    assert core.client_data(b"zz\r\n", 0.3) == [
        ClientReading(False),
        CloseClient(abort=True),
        ReleaseUpstream(reuse=False, abort=True),
        Wakeup(None),
    ]
    assert pool.calls == [("success", "127.0.0.1:9001")]  # not the backend's failure


def test_a_body_that_breaks_the_rules_before_any_answer_gets_400() -> None:
    core, _, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(CHUNKED, 0.1)
    out = without_logs(core.client_data(b"zz\r\n", 0.2))
    assert status_and_cause(sent(out)) == (400, "bad_request")
    assert out[0] == ClientReading(False)  # nothing more is read from a refused client
    assert [type(c) for c in out[1:]] == [SendToClient, CloseClient, Wakeup]


def test_a_pipelined_body_that_breaks_the_rules_is_answered_in_its_turn() -> None:
    core, _, _ = make()
    core.start(0.0, over_capacity=False)
    out = core.client_data(GET + CHUNKED + b"zz\r\n", 0.1)
    assert [type(c) for c in out] == [OpenUpstream, ClientReading, Wakeup]
    assert out[1:] == [ClientReading(False), Wakeup(None)]
    assert answer_ok(core, 0.2) == [ReleaseUpstream(reuse=True), CallSoon()]
    out = without_logs(core.proceed(0.3))
    assert status_and_cause(sent(out)) == (400, "bad_request")
    assert [type(c) for c in out] == [SendToClient, CloseClient]


def test_body_bytes_move_the_body_deadline_and_a_stall_gets_408() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    head = b"POST /up HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 10\r\n\r\n"
    assert core.client_data(head + b"ab", 0.0)[-1] == Wakeup(30.0)
    assert core.client_data(b"cd", 20.0) == []  # the wakeup stands; the body moved on
    assert without_logs(core.timer(30.0)) == [Wakeup(50.0)]
    out = core.timer(50.0)
    assert status_and_cause(sent(out)) == (408, "body_timeout")
    assert out[-1] == CloseClient()
    assert pool.calls == []  # the client stalled: no backend is blamed
