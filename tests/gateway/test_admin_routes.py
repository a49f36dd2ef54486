"""The admin listener's rules (admin_routes.py), fed request heads, no socket: the head
parser, the body limit at N and N+1, the token, Host and Origin rules, the routes, the
drain/enable arguments and the answers' bytes. Its I/O (admin.py) over a real socket:
test_admin.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wsgate.config.model import Address
from wsgate.gateway.admin_routes import (
    BODY_TOO_LARGE,
    COOKIE,
    CSP,
    EVENTS_HEAD,
    HEAD_TOO_LARGE,
    MALFORMED,
    MAX_BODY_BYTES,
    MAX_DRAIN_S,
    METRICS_OFF,
    REASONS,
    Asset,
    BackendPost,
    Drain,
    Page,
    Reply,
    Request,
    alive_reply,
    asset_reply,
    authorized,
    body_length,
    decide,
    json_reply,
    parse_head,
    ready_reply,
    refusal,
    to_json,
)

TOKEN = "s3cret-token"
LOCAL = "127.0.0.1:9090"
B1 = "127.0.0.1:9001"


def head(
    method: str = "GET", target: str = "/api/state", host: str | None = LOCAL, **headers: str
) -> Request:
    """A parsed head; keyword headers with _ for - (user_agent= is User-Agent)."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    request = parse_head(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert request is not None
    return request


def body_of(reply: Reply) -> Any:
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


def refused(reply: Reply | Asset | Page | BackendPost) -> tuple[int, str]:
    assert isinstance(reply, Reply), reply
    return reply.status, body_of(reply).get("error", "")


# == the head ================================================================================
def test_a_head_is_parsed_with_lower_case_names_and_the_query() -> None:
    request = parse_head(
        b"POST /api/backends/a/drain?over_s=2&x=1 HTTP/1.0\r\nHost: h:1\r\n"
        b"X-Thing :  spaced value \r\n\r\n"
    )
    assert request is not None
    assert (request.method, request.path) == ("POST", "/api/backends/a/drain")
    assert request.query == {"over_s": ["2"], "x": ["1"]}
    assert request.headers == {"host": "h:1", "x-thing": "spaced value"}


@pytest.mark.parametrize(
    "data",
    [
        b"GET /\r\n\r\n",  # no version
        b"GET  / HTTP/1.1\r\n\r\n",  # two spaces: four parts
        b"GET / HTTP/2\r\n\r\n",
        b"GET http://h/ HTTP/1.1\r\n\r\n",  # absolute form: not for this listener
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"",
    ],
)
def test_a_malformed_head_is_none(data: bytes) -> None:
    assert parse_head(data) is None


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (None, 0),
        ("0", 0),
        ("12", 12),
        (str(MAX_BODY_BYTES), MAX_BODY_BYTES),
        (str(MAX_BODY_BYTES + 1), None),
        ("-1", None),
        ("1.5", None),
        ("", None),
        ("ten", None),
    ],
)
def test_the_body_may_be_up_to_the_limit(length: str | None, expected: int | None) -> None:
    headers = {} if length is None else {"content_length": length}
    assert body_length(head("POST", **headers)) == expected


# == answers' bytes ==========================================================================
def test_a_reply_is_one_whole_answer_that_closes_the_connection() -> None:
    reply = Reply(202, b'{"a":1}', headers=(("Allow", "POST"),))
    assert reply.encode() == (
        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 7\r\n"
        b"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n"
        b'Allow: POST\r\n\r\n{"a":1}'
    )
    assert Reply(418, b"").encode().startswith(b"HTTP/1.1 418 Status\r\n")


def test_readyz_says_the_reasons_with_200_or_503() -> None:
    ready = {"ready": True, "phase": "running", "workers": 2, "reasons": [], "pools": {}}
    reply = ready_reply(ready)
    assert reply.status == 200
    assert body_of(reply) == {"ready": True, "phase": "running", "workers": 2, "reasons": []}
    waiting = {**ready, "ready": False, "reasons": ["not listening"]}
    assert ready_reply(waiting).status == 503
    assert body_of(ready_reply(waiting))["reasons"] == ["not listening"]


def test_healthz_rounds_the_uptime() -> None:
    assert body_of(alive_reply(77, 12.345)) == {"status": "alive", "pid": 77, "up_s": 12.3}


# == who may ask =============================================================================
@pytest.mark.parametrize("host", ["127.0.0.1:9090", "localhost", "localhost:1", "[::1]:9", "[::1]"])
def test_without_a_token_a_loopback_host_is_served(host: str) -> None:
    assert refusal(head(host=host), "") is None


@pytest.mark.parametrize("host", ["evil.example", "evil.example:9090", "10.0.0.1:80", None])
def test_without_a_token_another_host_is_refused(host: str | None) -> None:
    # DNS rebinding: a page of evil.example whose name resolves to 127.0.0.1.
    status, why = refused(decide(head(host=host), ""))
    assert status == 403 and "not a loopback name" in why


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_need_neither_a_loopback_host_nor_a_token(path: str) -> None:
    assert refusal(head(target=path, host="evil.example"), "") is None
    assert refusal(head(target=path), TOKEN) is None


def test_a_cross_origin_post_is_refused_and_a_same_origin_one_served() -> None:
    drain = f"/api/backends/{B1}/drain"
    status, why = refused(decide(head("POST", drain, origin="http://evil.example"), ""))
    assert (status, why) == (403, "cross-origin POST refused")
    assert refusal(head("POST", drain, origin=f"http://{LOCAL}"), "") is None
    assert refusal(head("POST", drain), "") is None  # no Origin: not a browser's page
    assert refusal(head("GET", origin="http://evil.example"), "") is None  # reads are GETs


def test_with_a_token_it_is_required_and_the_host_is_not_checked() -> None:
    reply = decide(head(host="admin.example"), TOKEN)
    assert refused(reply)[0] == 401
    assert isinstance(reply, Reply)
    assert ("WWW-Authenticate", 'Bearer realm="wsgate"') in reply.headers
    for wrong in ("Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN):
        assert refused(decide(head(authorization=wrong), TOKEN))[0] == 401, wrong
    for right in (f"Bearer {TOKEN}", f"bearer   {TOKEN} "):
        assert refusal(head(host="admin.example", authorization=right), TOKEN) is None


def test_the_cookie_carries_the_token_for_a_browser() -> None:
    assert refusal(head(cookie=f"theme=dark; {COOKIE}={TOKEN}"), TOKEN) is None
    assert refused(decide(head(cookie=f"{COOKIE}=nope"), TOKEN))[0] == 401
    assert refused(decide(head(cookie=f"other_{COOKIE}={TOKEN}"), TOKEN))[0] == 401


def test_the_query_token_counts_on_the_dashboard_page_only_and_wins_there() -> None:
    assert refusal(head(target=f"/?token={TOKEN}"), TOKEN) is None
    assert refused(decide(head(target=f"/api/state?token={TOKEN}"), TOKEN))[0] == 401
    wrong = head(target="/?token=wrong", authorization=f"Bearer {TOKEN}")
    assert refused(decide(wrong, TOKEN))[0] == 401


def test_with_a_token_a_cross_origin_post_is_still_refused() -> None:
    post = head("POST", f"/api/backends/{B1}/enable", origin="http://evil.example")
    request = head(
        "POST",
        f"/api/backends/{B1}/enable",
        origin="http://evil.example",
        authorization=f"Bearer {TOKEN}",
    )
    assert refused(decide(post, TOKEN))[0] == 401
    assert refused(decide(request, TOKEN)) == (403, "cross-origin POST refused")


# == which page ==============================================================================
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", Asset("dashboard.html", "text/html; charset=utf-8")),
        ("/dashboard.js", Asset("dashboard.js", "text/javascript; charset=utf-8")),
        ("/dashboard.css", Asset("dashboard.css", "text/css; charset=utf-8")),
        ("/api/events", Page.EVENTS),
        ("/api/state?pretty=1", Page.STATE),
        ("/metrics", Page.METRICS),
        ("/healthz", Page.HEALTH),
        ("/readyz", Page.READY),
    ],
)
def test_each_page_is_named_for_get_and_head(path: str, expected: Asset | Page) -> None:
    assert decide(head("GET", path), "") == expected
    assert decide(head("HEAD", path), "") == expected


def test_an_unknown_page_is_404_and_another_method_405() -> None:
    assert refused(decide(head(target="/nothing"), "")) == (404, "no such page: /nothing")
    reply = decide(head("DELETE", "/metrics"), "")
    assert refused(reply) == (405, "GET only")
    assert isinstance(reply, Reply) and reply.headers == (("Allow", "GET, HEAD"),)
    reply = decide(head("GET", f"/api/backends/{B1}/drain"), "")
    assert refused(reply) == (405, "POST only")
    assert isinstance(reply, Reply) and reply.headers == (("Allow", "POST"),)


def test_the_token_in_the_address_becomes_a_cookie() -> None:
    reply = decide(head(target=f"/?token={TOKEN}"), TOKEN)
    assert isinstance(reply, Reply) and reply.status == 303
    assert reply.headers == (
        ("Location", "/"),
        ("Set-Cookie", f"{COOKIE}={TOKEN}; HttpOnly; SameSite=Strict; Path=/"),
    )
    # Without a token configured the query means nothing: the page itself.
    assert decide(head(target="/?token=x"), "") == Asset(
        "dashboard.html", "text/html; charset=utf-8"
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (f"/api/backends/{B1}/drain", BackendPost(B1, True, None)),
        (f"/api/backends/{B1}/drain?over_s=2.5", BackendPost(B1, True, "2.5")),
        (f"/api/backends/{B1}/enable?over_s=9", BackendPost(B1, False, "9")),
        ("/api/backends/host%3A1/drain", BackendPost("host:1", True, None)),
        ("/api/backends/a/b/drain", BackendPost("a/b", True, None)),
        (f"/api/backends/{B1}/drain?over_s=", BackendPost(B1, True, None)),  # blank: default
    ],
)
def test_a_backend_post_is_parsed(target: str, expected: BackendPost) -> None:
    assert decide(head("POST", target), "") == expected


@pytest.mark.parametrize("target", [f"/api/backends/{B1}/reboot", "/api/backends//drain"])
def test_a_backend_post_without_a_name_or_action_is_404(target: str) -> None:
    assert refused(decide(head("POST", target), ""))[0] == 404


# == drain and enable ========================================================================
def test_a_drain_takes_the_default_time_or_the_query_s() -> None:
    assert BackendPost(B1, True, None).resolve({B1}, 30.0) == Drain(B1, True, 30.0)
    assert BackendPost(B1, True, "0").resolve({B1}, 30.0) == Drain(B1, True, 0.0)
    limit = BackendPost(B1, True, repr(MAX_DRAIN_S)).resolve({B1}, 30.0)
    assert limit == Drain(B1, True, MAX_DRAIN_S)
    assert BackendPost(B1, False, None).resolve({B1}, 30.0) == Drain(B1, False, 30.0)


@pytest.mark.parametrize("over_s", ["-1", "nan", "inf", "x", repr(MAX_DRAIN_S + 1)])
def test_a_drain_time_out_of_range_is_400(over_s: str) -> None:
    reply = BackendPost(B1, True, over_s).resolve({B1}, 30.0)
    assert isinstance(reply, Reply) and reply.status == 400
    assert body_of(reply) == {"error": "over_s: 0 to 86400 seconds"}


def test_an_unknown_backend_is_404_before_its_drain_time_is_read() -> None:
    reply = BackendPost("127.0.0.1:1", True, "nan").resolve({B1}, 30.0)
    assert isinstance(reply, Reply) and reply.status == 404
    assert body_of(reply) == {"error": "no backend called '127.0.0.1:1'"}


def test_a_drain_says_its_time_and_an_enable_does_not() -> None:
    drained = Drain(B1, True, 2.0).reply()
    assert drained.status == 202
    assert body_of(drained) == {"backend": B1, "drained": True, "over_s": 2.0}
    assert body_of(Drain(B1, False, 2.0).reply()) == {"backend": B1, "drained": False}


# == the rest of the answers =================================================================
def test_json_is_compact_and_says_what_json_cannot_hold_in_words() -> None:
    assert to_json({"a": [1, 2.5, None, True], "b": "é"}) == (
        b'{"a":[1,2.5,null,true],"b":"\\u00e9"}'
    )
    assert to_json({"at": Address("127.0.0.1", 9)}) == b'{"at":"127.0.0.1:9"}'


def test_a_json_reply_carries_its_headers_in_order() -> None:
    reply = json_reply(303, {}, ("Location", "/"), ("Set-Cookie", "a=b"))
    assert reply == Reply(
        303, b"{}", "application/json", (("Location", "/"), ("Set-Cookie", "a=b"))
    )


def test_an_asset_is_served_with_its_type_under_the_content_security_policy() -> None:
    reply = asset_reply(Asset("dashboard.js", "text/javascript; charset=utf-8"), b"let a;")
    assert (reply.status, reply.body) == (200, b"let a;")
    assert reply.content_type == "text/javascript; charset=utf-8"
    assert reply.headers == (("Content-Security-Policy", CSP),)
    assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP


@pytest.mark.parametrize(
    ("reply", "status", "error"),
    [
        (HEAD_TOO_LARGE, 431, "request head too large"),
        (MALFORMED, 400, "malformed request"),
        (BODY_TOO_LARGE, 413, f"a body of at most {MAX_BODY_BYTES} bytes"),
        (METRICS_OFF, 404, "metrics are off ([admin] metrics)"),
    ],
)
def test_the_fixed_refusals_say_why(reply: Reply, status: int, error: str) -> None:
    assert refused(reply) == (status, error)
    assert reply.encode().startswith(f"HTTP/1.1 {status} {REASONS[status]}\r\n".encode())


def test_the_event_stream_head_has_no_length_and_asks_for_no_buffering() -> None:
    head_lines = EVENTS_HEAD.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head_lines[0] == b"HTTP/1.1 200 OK"
    assert b"Content-Type: text/event-stream" in head_lines
    assert b"X-Accel-Buffering: no" in head_lines
    assert not any(line.lower().startswith(b"content-length") for line in head_lines)
    assert EVENTS_HEAD.endswith(b"\r\n\r\nretry: 1000\n\n")  # reconnect after 1 s


def test_authorized_compares_the_token_given_where_it_is_looked_for() -> None:
    assert authorized(head(authorization=f"Bearer {TOKEN}"), TOKEN)
    assert authorized(head(cookie=f"{COOKIE}={TOKEN}"), TOKEN)
    assert not authorized(head(), TOKEN)  # nothing given
    assert not authorized(head(authorization=f"Bearer {TOKEN[:-1]}"), TOKEN)
    # A bearer header wins over the cookie, and the dashboard's query over both.
    both = head(authorization="Bearer wrong", cookie=f"{COOKIE}={TOKEN}")
    assert not authorized(both, TOKEN)
    assert authorized(head(target=f"/?token={TOKEN}", authorization="Bearer wrong"), TOKEN)
