"""Playbooks for the handshake policy in the core: the pool's Origin list and subprotocol
list decide on the request head, before any slot or backend is taken."""

from __future__ import annotations

from tests.gateway.fakes import (
    UPGRADE,
    errors,
    make,
    sent,
    status_and_cause,
    upstream_bytes,
)
from wsgate.gateway.commands import OpenUpstream
from wsgate.gateway.states import Phase
from wsgate.gateway.upstream_side import UpstreamSide


def upgrade(*lines: bytes) -> bytes:
    head = UPGRADE[: -len(b"\r\n")]
    return head + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def test_a_foreign_origin_gets_403_and_no_backend_is_asked() -> None:
    core, pool, _ = make(allowed_origins=("https://app.example.com",))
    core.start(0.0, over_capacity=False)
    out = core.client_data(upgrade(b"Origin: https://evil.test"), 0.1)
    assert status_and_cause(sent(out)) == (403, "origin_not_allowed")
    assert b"Origin 'https://evil.test' is not in allowed_origins" in sent(out)
    assert errors(out) == ["origin_not_allowed"]
    assert not any(isinstance(c, OpenUpstream) for c in out)
    assert pool.calls == []  # no slot, no place in the queue
    assert core.phase is Phase.CLOSED


def test_an_allowed_origin_and_a_missing_one_go_through() -> None:
    for line in (b"Origin: https://app.example.com", b"X-Other: 1"):
        core, _, _ = make(allowed_origins=("https://app.example.com",))
        core.start(0.0, over_capacity=False)
        out = core.client_data(upgrade(line), 0.1)
        assert isinstance(out[0], OpenUpstream), line


def test_the_subprotocol_list_is_filtered_before_forwarding() -> None:
    core, _, _ = make(allowed_subprotocols=("chat.v2",))
    core.start(0.0, over_capacity=False)
    core.client_data(upgrade(b"Sec-WebSocket-Protocol: admin, chat.v2"), 0.1)
    head = upstream_bytes(UpstreamSide(core).upstream_ready(1.0, 0.2))
    assert b"\r\nSec-WebSocket-Protocol: chat.v2\r\n" in head
    assert b"admin" not in head


def test_no_allowed_subprotocol_left_gets_400_or_goes_on_without_the_header() -> None:
    core, _, _ = make(allowed_subprotocols=("chat.v2",))
    core.start(0.0, over_capacity=False)
    out = core.client_data(upgrade(b"Sec-WebSocket-Protocol: admin"), 0.1)
    assert status_and_cause(sent(out)) == (400, "subprotocol_not_allowed")

    core, _, _ = make(allowed_subprotocols=("chat.v2",), subprotocol_fallback="forward")
    core.start(0.0, over_capacity=False)
    core.client_data(upgrade(b"Sec-WebSocket-Protocol: admin"), 0.1)
    head = upstream_bytes(UpstreamSide(core).upstream_ready(1.0, 0.2))
    assert b"Sec-WebSocket-Protocol" not in head


def test_plain_requests_are_not_held_to_the_origin_list() -> None:
    core, _, _ = make(allowed_origins=("https://app.example.com",))
    core.start(0.0, over_capacity=False)
    out = core.client_data(
        b"GET /page HTTP/1.1\r\nHost: gw.test\r\nOrigin: https://x.test\r\n\r\n", 0.1
    )
    assert isinstance(out[0], OpenUpstream)
