"""The probe's pure helpers: URL, response head, chunked excerpt, TLS error mapping."""

from __future__ import annotations

import ssl

import pytest

from wsgate.doctor.idle import bisect_spans
from wsgate.doctor.observations import Settings, TlsFailure, percentile, summarise_burst
from wsgate.doctor.probe import (
    build_request,
    classify_tls_error,
    dechunk,
    parse_head,
    parse_target,
)
from wsgate.doctor.verdicts import accept_for


def test_parse_target() -> None:
    t = parse_target("wss://example.org/chat?room=1")
    assert (t.host, t.port, t.resource, t.secure) == ("example.org", 443, "/chat?room=1", True)
    assert parse_target("ws://[::1]:9000/").authority == "[::1]:9000"


@pytest.mark.parametrize("url", ["http://x/", "x", "ws://", "ws://host:99999/"])
def test_parse_target_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="not a ws:// or wss:// URL"):
        parse_target(url)


def test_parse_head() -> None:
    head = b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nX-A:  b \r\n"
    assert parse_head(head) == (426, "Upgrade Required", (("Upgrade", "websocket"), ("X-A", "b")))
    assert parse_head(b"HTTP/1.0 200 OK") == (200, "OK", ())
    assert parse_head(b"HTTP/1.1 101") == (101, "", ())


@pytest.mark.parametrize(
    "head", [b"SSH-2.0-OpenSSH", b"HTTP/2 200", b"HTTP/1.1 2000 x", b"HTTP/1.1 200 OK\r\nnocolon"]
)
def test_parse_head_rejects(head: bytes) -> None:
    with pytest.raises(ValueError):
        parse_head(head)


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
        "Cookie: a=b",
    ):
        assert f"\r\n{line}\r\n" in text, line
    assert len(accept_for(key)) == 28


def test_header_option_replaces_default() -> None:
    raw, _ = build_request(parse_target("ws://h/"), Settings(headers=(("Host", "other"),)))
    assert raw.decode().count("Host:") == 1
    assert "\r\nHost: other\r\n" in raw.decode()


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
