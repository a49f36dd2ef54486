"""Playbooks for the pure client core: literal bytes in, literal commands out, time moved
by the test. No sockets, no loop: what the gateway decides is tested here; that the
adapter carries it out is tested end to end in tests/e2e/.

Each hardening regression test of tests/e2e/test_gateway_hardening.py has a twin here
(named `test_dN_...`)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from tests.gateway.fakes import (
    GET,
    KEY,
    UPGRADE,
    errors,
    make,
    sent,
    sized,
    status_and_cause,
    switching,
    upstream_bytes,
    without_logs,
)
from wsgate.config.model import (
    ServerConfig,
)
from wsgate.gateway.commands import (
    CallSoon,
    ClientReading,
    CloseClient,
    CloseTunnel,
    Log,
    OpenUpstream,
    ReleaseUpstream,
    SendToClient,
    StartTunnel,
    Wakeup,
)
from wsgate.gateway.states import PHASE_MOVES, BadTransitionError, Phase, Stage
from wsgate.gateway.upstream_side import UpstreamSide
from wsgate.policy.admission import QUEUED, Rejected
from wsgate.policy.clients import ClientLimits
from wsgate.protocol.handshake import accept_value


# -- playbooks ---------------------------------------------------------------------------
def test_a_websocket_handshake_from_bytes_to_tunnel() -> None:
    core, pool, _ = make()
    assert core.start(0.0, over_capacity=False) == [Wakeup(10.0)]
    out = core.client_data(UPGRADE + b"\x81\x80abcd", 0.5)
    backend = pool.backends[0]
    assert out == [OpenUpstream(backend, head_request=False, head_limit=65536), Wakeup(None)]
    assert core.exchange is not None and core.exchange.stage is Stage.WAITING

    out = UpstreamSide(core).upstream_ready(1.5, 0.6)
    head = upstream_bytes(out)
    request_id = head.split(b"X-Request-Id: ", 1)[1].split(b"\r\n", 1)[0].decode()
    assert len(request_id) == 16 and int(request_id, 16) >= 0  # made by the gateway
    assert head.startswith(b"GET /chat HTTP/1.1\r\n")
    assert b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" in head
    assert b"X-Forwarded-For: 192.0.2.7\r\n" in head
    assert out[-1] == Wakeup(60.6)  # the response timeout
    exchange = core.exchange  # a new name: the type checker keeps no stage narrowed on it
    assert exchange is not None and exchange.stage is Stage.FORWARDED

    out = UpstreamSide(core).response_head(
        101, b"Switching Protocols", "1.1", switching(), True, 0.7
    )
    assert sent(out).startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert out[-1] == Wakeup(None)
    assert pool.calls[-2:] == [
        ("tunnel_opened", "127.0.0.1:9001"),
        ("done", "127.0.0.1:9001", "ok"),
    ]

    out = UpstreamSide(core).upstream_upgrade(b"\x81\x02hi", 0.8)
    # The tunnel takes over: it gives back the tunnel's count and the client's when it
    # ends, and the core holds nothing more (the adapter drops it).
    assert out == [
        StartTunnel(
            b"\x81\x02hi",
            b"\x81\x80abcd",
            {
                "request_id": request_id,  # the tunnel's end line carries it too
                "client": "192.0.2.7",
                "pool": "app",
                "backend": "127.0.0.1:9001",
            },
            0.0,
            backend,
            "192.0.2.7",
        )
    ]
    assert core.phase is Phase.TUNNEL
    assert core.active is None and core.exchange is None
    assert core.close(1001, "", reason="shutdown", now=1.0) == [CloseTunnel(1001, "", "shutdown")]
    assert core.client_lost(2.0) == []  # nothing left to give back
    assert pool.calls[-1] == ("done", "127.0.0.1:9001", "ok")


def test_a_plain_request_and_keep_alive() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    out = core.client_data(GET, 0.1)
    assert isinstance(out[0], OpenUpstream)
    UpstreamSide(core).upstream_ready(None, 0.1)
    out = UpstreamSide(core).response_head(200, b"OK", "1.1", sized(), True, 0.2)
    assert sent(out) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    assert UpstreamSide(core).response_body(b"ok") == [SendToClient(b"ok")]
    out = UpstreamSide(core).response_complete(0.3)
    assert without_logs(out) == [ReleaseUpstream(reuse=True), Wakeup(75.3)]
    assert core.idle
    # Nothing more from the client: the keep-alive timeout closes it, silently.
    assert core.timer(75.3) == [CloseClient()]
    assert pool.calls == [("success", "127.0.0.1:9001")]


def test_pipelined_requests_are_answered_in_order() -> None:
    core, _, _ = make()
    core.start(0.0, over_capacity=False)
    out = core.client_data(GET + GET.replace(b"/page", b"/second"), 0.1)
    assert sum(isinstance(c, OpenUpstream) for c in out) == 1  # one at a time
    UpstreamSide(core).upstream_ready(None, 0.1)
    UpstreamSide(core).response_head(200, b"OK", "1.1", sized(), True, 0.2)
    UpstreamSide(core).response_body(b"ok")
    out = UpstreamSide(core).response_complete(0.3)
    assert CallSoon() in out  # the next request starts on the next turn of the loop
    out = core.proceed(0.3)
    assert isinstance(out[0], OpenUpstream)
    assert upstream_bytes(UpstreamSide(core).upstream_ready(None, 0.3)).startswith(b"GET /second ")


def test_the_header_timeout_answers_408() -> None:
    core, _, _ = make()
    core.start(0.0, over_capacity=False)
    assert core.client_data(b"GET / HTTP/1.1\r\n", 1.0) == []  # the deadline stands
    out = core.timer(10.0)
    assert status_and_cause(sent(out)) == (408, "header_timeout")
    assert out[-1] == CloseClient()


def test_over_capacity_answers_503_at_once() -> None:
    core, _, _ = make()
    out = core.start(0.0, over_capacity=True)
    status, cause = status_and_cause(sent(out))
    assert (status, cause) == (503, "at_capacity")
    assert b"Retry-After: " in sent(out)
    assert CloseClient() in out


def test_a_queued_handshake_waits_then_is_admitted() -> None:
    core, pool, _ = make()
    pool.answers = [QUEUED]
    core.start(0.0, over_capacity=False)
    assert without_logs(core.client_data(UPGRADE, 0.1)) == [Wakeup(None)]
    out = UpstreamSide(core).admitted(cast(Any, pool.backends[1]), 3.0)
    assert out == [OpenUpstream(pool.backends[1], head_request=False, head_limit=65536)]


def test_a_queued_handshake_that_is_turned_away_gets_503_with_retry_after() -> None:
    core, pool, _ = make()
    pool.answers = [QUEUED]
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    out = UpstreamSide(core).rejected("overloaded_queue_timeout", "Waited 30 s.", 7, 30.1)
    assert status_and_cause(sent(out)) == (503, "overloaded_queue_timeout")
    assert b"Retry-After: 7\r\n" in sent(out)
    assert errors(out) == ["overloaded_queue_timeout"]


def test_a_client_that_gives_up_while_queued_leaves_the_queue() -> None:
    core, pool, _ = make()
    pool.answers = [QUEUED]
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    out, keep = core.client_eof(2.0)
    assert not keep
    assert out == [CloseClient()]
    assert ("cancel",) in pool.calls


def test_a_full_queue_is_answered_with_the_pools_words() -> None:
    core, pool, _ = make()
    pool.answers = [Rejected("overloaded_queue_full", "4096 wait.", 12)]
    core.start(0.0, over_capacity=False)
    out = core.client_data(UPGRADE, 0.1)
    assert status_and_cause(sent(out)) == (503, "overloaded_queue_full")
    assert b"Retry-After: 12\r\n" in sent(out)
    assert pool.calls == [("admit", False)]


def test_a_refused_connect_is_retried_on_the_other_backend() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    out = UpstreamSide(core).upstream_failed("upstream_connect_refused", "refused", 0.2)
    assert ("done", "127.0.0.1:9001", "failed") in pool.calls
    assert ("admit", True) in pool.calls  # back to the front of the line
    assert [c for c in out if isinstance(c, OpenUpstream)] == [
        OpenUpstream(pool.backends[1], head_request=False, head_limit=65536)
    ]
    assert [c.name for c in out if isinstance(c, Log)] == ["upstream_attempt"]


def test_when_every_backend_failed_the_last_failure_explains() -> None:
    core, _, _ = make(backends=1, retries=0)
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    out = UpstreamSide(core).upstream_failed("upstream_connect_refused", "Backend refused.", 0.2)
    assert status_and_cause(sent(out)) == (502, "upstream_connect_refused")


def test_d9_out_of_descriptors_is_not_the_backends_fault() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    out = UpstreamSide(core).upstream_failed("out_of_file_descriptors", "EMFILE.", 0.2)
    assert status_and_cause(sent(out)) == (503, "out_of_file_descriptors")
    assert b"Retry-After: 5\r\n" in sent(out)
    assert ("done", "127.0.0.1:9001", "aborted") in pool.calls  # no failure counted
    assert not any(call[0] == "failure" for call in pool.calls)
    assert not any(isinstance(c, OpenUpstream) for c in out)  # and no retry


def test_the_response_timeout_counts_against_the_backend() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    UpstreamSide(core).upstream_ready(None, 0.1)
    out = core.timer(60.1)
    assert status_and_cause(sent(out)) == (504, "upstream_handshake_timeout")
    assert ("done", "127.0.0.1:9001", "dropped") in pool.calls
    assert ReleaseUpstream(abort=True) in out


def test_d1_an_upgrade_with_a_body_never_reaches_a_backend() -> None:
    for extra in (b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n"):
        core, pool, _ = make()
        core.start(0.0, over_capacity=False)
        request = UPGRADE.replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n") + b"hello"
        out = core.client_data(request, 0.1)
        assert status_and_cause(sent(out)) == (400, "upgrade_with_body")
        assert not any(isinstance(c, OpenUpstream) for c in out)
        assert pool.calls == []


def test_d1_a_refused_upgrade_does_not_give_its_connection_back() -> None:
    core, _, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    UpstreamSide(core).upstream_ready(None, 0.1)
    out = UpstreamSide(core).response_head(404, b"Not Found", "1.1", sized(b"no"), True, 0.2)
    assert b"Connection: close\r\n" in sent(out)
    UpstreamSide(core).response_body(b"no")
    out = UpstreamSide(core).response_complete(0.3)
    assert ReleaseUpstream(reuse=False) in out
    assert out[-1] == CloseClient()


def test_d2_a_stalled_upgrade_body_is_never_a_backend_timeout() -> None:
    # The refusal comes before any backend: nothing for the backend's health to count.
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE.replace(b"\r\n\r\n", b"\r\nContent-Length: 4\r\n\r\n"), 0.1)
    assert core.timer(120.0) == []
    assert pool.calls == []


def test_d3_a_trailer_over_the_limit_gets_431() -> None:
    core, _, _ = make(server=ServerConfig(access_log=False, max_header_bytes=1024))
    core.start(0.0, over_capacity=False)
    head = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    out = core.client_data(head + b"5\r\nhello\r\n0\r\n", 0.1)
    assert isinstance(out[0], OpenUpstream)
    UpstreamSide(core).upstream_ready(None, 0.1)
    out = core.client_data(b"X-T: " + b"v" * 2000 + b"\r\n\r\n", 0.2)
    assert status_and_cause(sent(out)) == (431, "trailer_too_large")
    assert ReleaseUpstream(abort=True) in out


def test_d4_an_oversized_response_head_is_a_502_without_a_retry() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(GET, 0.1)
    UpstreamSide(core).upstream_ready(None, 0.1)
    out = UpstreamSide(core).upstream_bad_response(
        "response head over 65536 bytes", "upstream_header_too_large", 0.2
    )
    assert status_and_cause(sent(out)) == (502, "upstream_header_too_large")
    assert pool.calls == [("failure", "127.0.0.1:9001")]
    assert not any(isinstance(c, OpenUpstream) for c in out)


def test_d5_a_stalled_body_gets_408_and_paused_time_does_not_count() -> None:
    core, pool, _ = make(server=ServerConfig(access_log=False, body_timeout_s=30.0))
    core.start(0.0, over_capacity=False)
    out = core.client_data(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx", 0.0)
    assert out[-1] == Wakeup(30.0)
    UpstreamSide(core).upstream_ready(None, 0.0)
    # The backend cannot take more for a while: reading pauses, and the body timer waits.
    assert UpstreamSide(core).upstream_write_paused(True) == [ClientReading(False)]
    assert without_logs(core.timer(30.0)) == [Wakeup(60.0)]
    assert UpstreamSide(core).upstream_write_paused(False) == [ClientReading(True)]
    out = core.timer(60.0)
    assert status_and_cause(sent(out)) == (408, "body_timeout")
    assert not any(call[0] == "failure" for call in pool.calls)


def test_d10_a_pipelined_head_over_the_limit_is_refused_in_its_turn() -> None:
    core, _, _ = make(server=ServerConfig(access_log=False, max_header_bytes=1024))
    core.start(0.0, over_capacity=False)
    big = b"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n"
    out = core.client_data(GET + big, 0.1)
    assert sent(out) == b""  # nothing yet: the first request is answered first
    assert ClientReading(False) in out
    UpstreamSide(core).upstream_ready(None, 0.1)
    UpstreamSide(core).response_head(200, b"OK", "1.1", sized(), True, 0.2)
    UpstreamSide(core).response_body(b"ok")
    UpstreamSide(core).response_complete(0.3)
    out = core.proceed(0.3)
    assert status_and_cause(sent(out)) == (431, "header_too_large")


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", (400, "bad_host")),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", (400, "bad_host")),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", (505, "unsupported_http_version")),
        (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", (400, "bad_request")),
    ],
)
def test_heads_a_proxy_must_refuse(request_bytes: bytes, expected: tuple[int, str]) -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    out = core.client_data(request_bytes, 0.1)
    assert status_and_cause(sent(out)) == expected
    assert pool.calls == []


def test_draining_answers_shutting_down() -> None:
    core, _, gw = make()
    gw.draining = True
    core.start(0.0, over_capacity=False)
    out = core.client_data(UPGRADE, 0.1)
    assert status_and_cause(sent(out)) == (503, "shutting_down")


def test_a_backend_that_breaks_framing_before_the_answer_is_retried() -> None:
    core, _, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    UpstreamSide(core).upstream_ready(None, 0.1)
    out = UpstreamSide(core).upstream_bad_response("bad status line", "upstream_bad_response", 0.2)
    assert [c.backend.name for c in out if isinstance(c, OpenUpstream)] == ["127.0.0.1:9002"]


def test_a_wrong_accept_is_a_502() -> None:
    core, pool, _ = make()
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    UpstreamSide(core).upstream_ready(None, 0.1)
    out = UpstreamSide(core).response_head(
        101, b"Switching", "1.1", switching(b"x" * 24), True, 0.2
    )
    assert status_and_cause(sent(out)) == (502, "upstream_bad_accept")
    assert ("done", "127.0.0.1:9001", "failed") in pool.calls


def test_the_transition_tables_are_enforced() -> None:
    core, _, _ = make()
    assert Phase.TUNNEL not in PHASE_MOVES[Phase.IDLE]
    with pytest.raises(BadTransitionError):
        core._move(Phase.TUNNEL)  # a bug in the core must not pass silently


def test_an_answer_that_ends_during_a_drain_closes_the_connection() -> None:
    core, _, gw = make()
    core.start(0.0, over_capacity=False)
    core.client_data(GET, 0.1)
    UpstreamSide(core).upstream_ready(None, 0.1)
    UpstreamSide(core).response_head(200, b"OK", "1.1", sized(), True, 0.2)
    gw.draining = True  # the drain starts while the body streams
    UpstreamSide(core).response_body(b"ok")
    out = UpstreamSide(core).response_complete(0.3)
    assert ReleaseUpstream(reuse=True) in out
    assert out[-1] == CloseClient()


def test_a_clients_request_id_is_kept_and_logged() -> None:
    core, _, _ = make(backends=1, retries=0)
    core.start(0.0, over_capacity=False)
    core.client_data(GET.replace(b"\r\n\r\n", b"\r\nX-Request-Id: abc-123\r\n\r\n"), 0.1)
    head = upstream_bytes(UpstreamSide(core).upstream_ready(None, 0.1))
    assert head.count(b"X-Request-Id: ") == 1 and b"X-Request-Id: abc-123\r\n" in head
    out = core.timer(60.1)  # no answer: 504, and its error line names the request
    (line,) = [c for c in out if isinstance(c, Log) and c.kind == "error"]
    assert line.fields["request_id"] == "abc-123"


# -- the overload answer a browser can read (issue 15) --------------------------------------
BROWSER_UPGRADE = UPGRADE.replace(
    b"Host: gw.test\r\n", b"Host: gw.test\r\nOrigin: http://gw.test\r\n"
)


def close_of(data: bytes) -> tuple[int, str]:
    """The 101's close frame: its code and reason (a server frame: unmasked, short)."""
    head, frame = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert frame[0] == 0x88 and frame[1] == len(frame) - 2
    return int.from_bytes(frame[2:4], "big"), frame[4:].decode()


@pytest.mark.parametrize(
    ("answer", "request_bytes", "closes"),
    [
        ("auto", BROWSER_UPGRADE, True),
        ("auto", UPGRADE, False),
        ("close", UPGRADE, True),
        ("http", BROWSER_UPGRADE, False),
    ],
)
def test_a_full_queue_is_a_1013_close_for_browsers(
    answer: str, request_bytes: bytes, closes: bool
) -> None:
    core, pool, _ = make(overload_answer=answer)
    pool.answers = [Rejected("overloaded_queue_full", "4096 wait.", 12)]
    core.start(0.0, over_capacity=False)
    out = core.client_data(request_bytes, 0.1)
    if closes:
        assert close_of(sent(out)) == (1013, "retry-after=12; cause=overloaded_queue_full")
        head = sent(out).split(b"\r\n\r\n", 1)[0]
        assert b"Sec-WebSocket-Accept: " + accept_value(KEY) in head
        assert b"Retry-After: 12" in head
    else:
        assert status_and_cause(sent(out)) == (503, "overloaded_queue_full")
    assert CloseClient() in out
    assert errors(out) == ["overloaded_queue_full"]
    assert ("done", "127.0.0.1:9001", "ok") not in pool.calls  # no backend involved


def test_shutting_down_is_a_1012_close_and_a_rate_limit_a_1008() -> None:
    core, _, gw = make(overload_answer="close")
    gw.draining = True
    core.start(0.0, over_capacity=False)
    assert close_of(sent(core.client_data(UPGRADE, 0.1))) == (
        1012,
        "retry-after=1; cause=shutting_down",
    )
    core, _, gw = make(
        overload_answer="close",
        server=ServerConfig(access_log=False, client_handshake_rate=1.0, client_handshake_burst=1),
    )
    gw.client_limits = ClientLimits(0, 1.0, 1)
    core.start(0.0, over_capacity=False)
    core.client_data(UPGRADE, 0.1)
    other, _, _ = make(overload_answer="close")
    other.gw = gw  # the same per-client limits: a second handshake from that client
    other.start(0.2, over_capacity=False)
    code, reason = close_of(sent(other.client_data(UPGRADE, 0.2)))
    assert code == 1008 and reason.endswith("; cause=client_rate_limited")
    assert reason.startswith("retry-after=")


def test_a_refusal_without_retry_after_stays_http_even_for_browsers() -> None:
    core, _, _ = make(overload_answer="close")
    core.start(0.0, over_capacity=False)
    bad = BROWSER_UPGRADE.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
    assert status_and_cause(sent(core.client_data(bad, 0.1))) == (426, "unsupported_version")


def test_the_client_script_is_served_at_its_path_and_the_connection_kept() -> None:
    core, pool, gw = make(server=ServerConfig(access_log=False, client_script_path="/ws.js"))
    core.start(0.0, over_capacity=False)
    out = core.client_data(b"GET /ws.js?v=2 HTTP/1.1\r\nHost: gw.test\r\n\r\n", 0.1)
    head, body = sent(out).split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/javascript; charset=utf-8" in head
    assert b"Connection: keep-alive" in head
    assert body == gw.client_script
    assert CloseClient() not in out and pool.calls == []
    # The next request on the connection goes to a backend as usual.
    out = core.client_data(GET, 0.2)
    assert any(isinstance(c, OpenUpstream) for c in out)
