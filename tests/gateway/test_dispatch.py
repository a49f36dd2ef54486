"""A request's turn (gateway/dispatch.py) alone, against a recording host: each way a
request is answered without a backend, the client script, the way to a backend (intake
has filled the request in), and a refused head's stand-in. The core's playbooks
(test_core.py) check the answers' bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from tests.gateway.fakes import KEY, FakeGateway, make
from wsgate.config.model import ServerConfig
from wsgate.gateway.commands import Command, SendToClient
from wsgate.gateway.dispatch import answer_here, stand_in
from wsgate.gateway.router import Router
from wsgate.gateway.states import Request
from wsgate.policy.clients import ClientLimits
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import HeaderList


@dataclass
class Host:
    """The connection a request's turn talks to: what it is told is recorded."""

    gw: FakeGateway
    client_ip: str = "192.0.2.7"
    now: float = 0.0
    keep: bool = True
    commands: list[Command] = field(default_factory=list)
    failures: list[tuple[str, str, int | None]] = field(default_factory=list)
    answers: list[Request] = field(default_factory=list)

    def fail(self, cause: str, detail: str, *, retry_after_s: int | None = None) -> None:
        self.failures.append((cause, detail, retry_after_s))

    def keep_alive_allowed(self) -> bool:
        return self.keep

    def answered(self, request: Request) -> None:
        self.answers.append(request)


def turn(
    target: bytes = b"/chat",
    *,
    method: bytes = b"GET",
    ws_key: bytes | None = None,
    server: ServerConfig | None = None,
) -> tuple[Request, Host]:
    _, _, gw = make(server=server)
    headers = HeaderList()
    headers.append((b"Host", b"gw.test"))
    request = Request(method, target, "1.1", headers, True, Framing.NONE, 0.0, ws_key=ws_key)
    return request, Host(gw, now=1.0)


def test_a_request_that_passes_goes_to_a_backend_filled_in() -> None:
    request, host = turn(ws_key=KEY)
    assert answer_here(cast(Any, host), request) is False
    assert request.pool is host.gw.pools["app"] and request.client == "192.0.2.7"
    assert request.request_id_made and host.failures == [] and host.commands == []


def test_a_refused_head_is_answered_with_its_error_before_any_routing() -> None:
    request, host = turn()
    request.error = ProtocolError("header_too_large", "Over 8 KiB.")
    assert answer_here(cast(Any, host), request) is True
    assert host.failures == [("header_too_large", "Over 8 KiB.", None)]
    assert request.pool is None and request.overload_answer == "http"  # never routed


def test_draining_refuses_with_a_retry_after_and_the_routes_answer() -> None:
    request, host = turn(ws_key=KEY)
    host.gw.draining = True
    assert answer_here(cast(Any, host), request) is True
    assert host.failures == [("shutting_down", "", 1)]
    assert request.overload_answer == "auto" and request.pool is None  # routed, not taken in


def test_no_route_names_the_host_and_path() -> None:
    request, host = turn(b"/chat?x=1")
    host.gw.router = Router(())
    assert answer_here(cast(Any, host), request) is True
    assert host.failures == [("no_route", "Host 'gw.test', path '/chat'.", None)]


def test_a_rule_of_intake_refuses_with_its_words() -> None:
    request, host = turn(ws_key=KEY)
    host.gw.client_limits = ClientLimits(1, 0.0, 20)  # one open handshake per client
    assert host.gw.client_limits.admit("192.0.2.7", 1.0) is None  # held by another
    assert answer_here(cast(Any, host), request) is True
    assert [cause for cause, _, _ in host.failures] == ["client_rate_limited"]


def test_the_client_script_is_answered_here_and_keeps_the_connection() -> None:
    server = ServerConfig(access_log=False, client_script_path="/ws.js")
    request, host = turn(b"/ws.js", method=b"HEAD", server=server)
    assert answer_here(cast(Any, host), request) is True
    assert host.answers == [request] and host.failures == []
    assert request.status == 200 and request.complete and not request.close_after
    [answer] = host.commands
    assert isinstance(answer, SendToClient) and answer.data.endswith(b"\r\n\r\n")  # HEAD


def test_the_client_script_closes_when_the_connection_may_not_stay() -> None:
    server = ServerConfig(access_log=False, client_script_path="/ws.js")
    request, host = turn(b"/ws.js", server=server)
    host.keep = False
    assert answer_here(cast(Any, host), request) is True
    assert request.close_after
    [answer] = host.commands
    assert isinstance(answer, SendToClient) and answer.data.endswith(host.gw.client_script)


def test_a_stand_in_takes_a_refused_heads_turn() -> None:
    error = ProtocolError("bad_request", "No.")
    request = stand_in(error, 4.5)
    assert request.error is error and request.received_at == 4.5
    assert not request.keep_alive and request.framing is Framing.NONE and request.method == b""
