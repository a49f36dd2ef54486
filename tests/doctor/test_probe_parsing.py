"""The probe's pure helpers: URL, request, 101 check, chunked excerpt, TLS error mapping.
The response head itself is parsed by protocol.client_handshake (tests/protocol)."""

from __future__ import annotations

import ssl

import pytest

from tests.doctor.literals import ACCEPT, KEY
from wsgate.doctor.idle import bisect_spans
from wsgate.doctor.observations import (
    Answer,
    AnswerKind,
    Settings,
    TlsFailure,
    percentile,
    summarise_burst,
)
from wsgate.doctor.probe import (
    build_request,
    classify_tls_error,
    dechunk,
    failed_101,
    parse_target,
    upgrade_of,
)
from wsgate.protocol.handshake import accept_value


def test_parse_target() -> None:
    t = parse_target("wss://example.org/chat?room=1")
    assert (t.host, t.port, t.resource, t.secure) == ("example.org", 443, "/chat?room=1", True)
    assert parse_target("ws://[::1]:9000/").authority == "[::1]:9000"


@pytest.mark.parametrize("url", ["http://x/", "x", "ws://", "ws://host:99999/"])
def test_parse_target_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="not a ws:// or wss:// URL"):
        parse_target(url)


def test_dechunk() -> None:
    assert dechunk(b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n") == b"hello world"
    assert dechunk(b"5\r\nhel") == b"hel"  # an excerpt cut short
    assert dechunk(b"zz\r\nhello") == b""


def test_build_request_carries_options() -> None:
    target = parse_target("ws://127.0.0.1:8080/chat")
    settings = Settings(
        origin="https://app.example", subprotocols=("v1", "v2"), headers=(("Cookie", "a=b"),)
    )
    raw, key = build_request(target, settings)
    text = raw.decode()
    assert text.startswith("GET /chat HTTP/1.1\r\n")
    for line in (
        "Host: 127.0.0.1:8080",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Origin: https://app.example",
        "Sec-WebSocket-Protocol: v1, v2",
        "User-Agent: wsgate-doctor",
        "Cookie: a=b",
    ):
        assert f"\r\n{line}\r\n" in text, line
    assert len(accept_value(key.encode())) == 28


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("ws://127.0.0.1/", "127.0.0.1"),
        ("wss://example.org:443/", "example.org"),
        ("ws://[::1]:9000/", "[::1]:9000"),
        ("wss://b\u00fccher.example/", "xn--bcher-kva.example"),
    ],
)
def test_host_header_as_a_browser_sends_it(url: str, host: str) -> None:
    raw, _ = build_request(parse_target(url), Settings())
    assert f"\r\nHost: {host}\r\n" in raw.decode()


def test_path_and_query_are_sent_percent_encoded() -> None:
    raw, _ = build_request(parse_target("ws://h/a b?q=\u00fc"), Settings())
    assert raw.startswith(b"GET /a%20b?q=%C3%BC HTTP/1.1\r\n")


def test_each_request_has_a_fresh_key() -> None:
    target = parse_target("ws://h/")
    assert build_request(target, Settings())[1] != build_request(target, Settings())[1]


def test_header_option_replaces_default() -> None:
    settings = Settings(headers=(("Host", "other"), ("user-agent", "me")))
    raw, _ = build_request(parse_target("ws://h/"), settings)
    assert raw.decode().count("Host:") == 1
    assert "\r\nHost: other\r\n" in raw.decode()
    assert "\r\nuser-agent: me\r\n" in raw.decode()
    assert "wsgate-doctor" not in raw.decode()


def answer_101(*headers: tuple[str, str]) -> Answer:
    upgraded = (("Upgrade", "websocket"), ("Connection", "Upgrade"))
    return Answer(AnswerKind.RESPONSE, 1.0, 101, "Switching Protocols", upgraded + headers)


def test_failed_101_makes_a_clients_checks() -> None:
    assert failed_101(answer_101(("Sec-WebSocket-Accept", ACCEPT)), KEY, Settings()) is None
    wrong = failed_101(answer_101(("Sec-WebSocket-Accept", "x")), KEY, Settings())
    assert wrong is not None and "does not match" in wrong
    chat = answer_101(("Sec-WebSocket-Accept", ACCEPT), ("Sec-WebSocket-Protocol", "chat"))
    assert failed_101(chat, KEY, Settings(subprotocols=("chat",))) is None
    assert "subprotocol" in (failed_101(chat, KEY, Settings()) or "")
    bare = Answer(AnswerKind.RESPONSE, 1.0, 101, "", (("Sec-WebSocket-Accept", ACCEPT),))
    assert "Upgrade" in (failed_101(bare, KEY, Settings()) or "")


def test_upgrade_of_expects_the_accept_of_the_key() -> None:
    up = upgrade_of(answer_101(("Sec-WebSocket-Accept", ACCEPT)), KEY, Settings())
    assert up.accept_expected == up.accept_received == ACCEPT


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    exc.verify_code = code
    exc.verify_message = message
    return exc


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (verify_error(10, "certificate has expired"), TlsFailure.EXPIRED),
        (verify_error(9, "certificate is not yet valid"), TlsFailure.EXPIRED),
        (verify_error(18, "self-signed certificate"), TlsFailure.UNTRUSTED),
        (verify_error(20, "unable to get local issuer certificate"), TlsFailure.UNTRUSTED),
        (verify_error(62, "Hostname mismatch"), TlsFailure.HOSTNAME),
        (ssl.SSLError(1, "[SSL] tlsv1 alert no application protocol"), TlsFailure.NO_ALPN),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), TlsFailure.HANDSHAKE),
        (ConnectionResetError(104, "Connection reset by peer"), TlsFailure.HANDSHAKE),
    ],
)
def test_classify_tls_error(exc: BaseException, failure: TlsFailure) -> None:
    assert classify_tls_error(exc)[0] is failure


def test_wrong_version_suggests_ws() -> None:
    _, words = classify_tls_error(ssl.SSLError(1, "wrong version number"))
    assert "try ws://" in words


def test_percentile_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 95) == 95.0
    assert percentile(samples, 100) == 100.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 95) == 0.0


def test_summarise_burst() -> None:
    burst = summarise_burst(
        [("101", 10.0), ("http 504", 2000.0), ("101", 20.0), ("tcp timeout", 3000.0)], 5.0, 3100.0
    )
    assert burst.n == 4
    assert burst.failures == 2
    assert burst.outcomes == (("101", 2), ("http 504", 1), ("tcp timeout", 1))
    assert (burst.p50_ms, burst.max_ms, burst.single_ms) == (20.0, 3000.0, 5.0)


def test_bisect_spans() -> None:
    assert bisect_spans(8.0, 8) == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
    assert bisect_spans(300.0, 4) == (75.0, 150.0, 225.0, 300.0)
    assert bisect_spans(5.0, 0) == (5.0,)
