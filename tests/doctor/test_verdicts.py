"""Verdicts: literal observations in, finding codes out. No sockets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.doctor.literals import (
    ACCEPT,
    APACHE_502,
    CONNECTED,
    DNS,
    HAPROXY_503,
    NGINX_404,
    NGINX_502,
    NGINX_504,
    TARGET,
    WEBSOCKETS_426,
    WEBSOCKETS_505,
    answer,
    reached,
    upgraded,
)
from wsgate.doctor.observations import (
    Answer,
    AnswerKind,
    BurstObs,
    CloseObs,
    CompareObs,
    DnsObs,
    EchoObs,
    IdleEnd,
    IdleObs,
    IdleSpan,
    Observations,
    PingObs,
    Settings,
    Target,
    TcpAttempt,
    TcpOutcome,
    TlsFailure,
    TlsObs,
    UpgradeObs,
)
from wsgate.doctor.verdicts import Diagnosis, diagnose
from wsgate.findings import CATALOGUE
from wsgate.findings.model import Severity


def codes(diagnosis: Diagnosis) -> list[str]:
    return [f.code for f in diagnosis.findings]


def only(diagnosis: Diagnosis) -> str:
    found = codes(diagnosis)
    assert len(found) == 1, found
    return found[0]


def test_healthy_probe_says_healthy_and_ok() -> None:
    diagnosis = diagnose(upgraded())
    assert codes(diagnosis) == ["healthy"]
    assert diagnosis.ok
    assert diagnosis.findings[0].severity is Severity.INFO
    assert [layer.name for layer in diagnosis.layers] == [
        "dns", "tcp", "upgrade", "101", "ping", "close"
    ]  # fmt: skip
    assert all(layer.ok for layer in diagnosis.layers)


def test_dns_failure() -> None:
    obs = Observations(TARGET, dns=DnsObs("x.invalid", (), 0.1, error="never resolves"))
    diagnosis = diagnose(obs)
    assert only(diagnosis) == "dns_failure"
    assert not diagnosis.ok
    assert "x.invalid" in diagnosis.findings[0].evidence


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        ((TcpOutcome.REFUSED,), "tcp_refused"),
        ((TcpOutcome.REFUSED, TcpOutcome.REFUSED), "tcp_refused"),
        ((TcpOutcome.TIMEOUT,), "tcp_timeout"),
        ((TcpOutcome.REFUSED, TcpOutcome.TIMEOUT), "tcp_timeout"),
        ((TcpOutcome.ERROR,), "tcp_failed"),
    ],
)
def test_tcp_failures(outcomes: tuple[TcpOutcome, ...], code: str) -> None:
    attempts = tuple(
        TcpAttempt(f"127.0.0.{i + 1}", 80, outcome, 1.0) for i, outcome in enumerate(outcomes)
    )
    obs = Observations(TARGET, dns=DNS, tcp=attempts)
    assert only(diagnose(obs)) == code


def test_some_addresses_refused_is_a_warning_and_probe_goes_on() -> None:
    attempts = (TcpAttempt("::1", 8080, TcpOutcome.REFUSED, 0.1), *CONNECTED)
    diagnosis = diagnose(upgraded(tcp=attempts))
    assert codes(diagnosis) == ["tcp_partial", "healthy"]
    assert diagnosis.ok


SECURE = Target("wss://localhost:8443/", "localhost", 8443, "/", True)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (TlsFailure.UNTRUSTED, "tls_cert_untrusted"),
        (TlsFailure.EXPIRED, "tls_cert_expired"),
        (TlsFailure.HOSTNAME, "tls_hostname_mismatch"),
        (TlsFailure.NO_ALPN, "tls_no_http11_alpn"),
        (TlsFailure.HANDSHAKE, "tls_failed"),
        (TlsFailure.TIMEOUT, "tls_failed"),
    ],
)
def test_tls_failures(failure: TlsFailure, code: str) -> None:
    tls = TlsObs(2.0, failure=failure, error="certificate verify failed")
    obs = Observations(SECURE, dns=DNS, tcp=CONNECTED, tls=tls)
    assert only(diagnose(obs)) == code


def test_server_selecting_h2_is_no_http11_alpn() -> None:
    tls = TlsObs(2.0, version="TLSv1.3", alpn="h2", verified=True)
    obs = Observations(SECURE, dns=DNS, tcp=CONNECTED, tls=tls)
    assert only(diagnose(obs)) == "tls_no_http11_alpn"


def test_certificate_expiring_soon_is_a_warning() -> None:
    tls = TlsObs(2.0, "TLSv1.3", "http/1.1", True, "CN=localhost", "Dec  1 00:00:00 2026", 3.5)
    diagnosis = diagnose(upgraded(target=SECURE, tls=tls))
    assert codes(diagnosis) == ["tls_cert_expiring", "healthy"]
    assert "3.5 days" in diagnosis.findings[0].evidence


def test_secure_target_without_tls_observation_stops() -> None:
    obs = Observations(SECURE, dns=DNS, tcp=CONNECTED)
    assert codes(diagnose(obs)) == []


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (AnswerKind.EOF, "connection_dropped"),
        (AnswerKind.RESET, "connection_dropped"),
        (AnswerKind.TIMEOUT, "response_timeout"),
        (AnswerKind.GARBAGE, "bad_response"),
    ],
)
def test_answers_without_status(kind: AnswerKind, code: str) -> None:
    obs = reached(Answer(kind, 12.0, error="x"))
    assert only(diagnose(obs)) == code


def test_tls_bytes_on_ws_url_say_use_wss() -> None:
    obs = reached(Answer(AnswerKind.GARBAGE, 1.0, error="TLS record bytes instead of HTTP"))
    assert "use wss://" in diagnose(obs).findings[0].evidence


def test_nginx_502_page_is_upstream_unreachable_with_nginx_fix() -> None:
    obs = reached(answer(502, NGINX_502, (("Server", "nginx/1.22.1"),), reason="Bad Gateway"))
    diagnosis = diagnose(obs)
    assert only(diagnosis) == "gateway_upstream_unreachable"
    found = diagnosis.findings[0]
    assert "nginx itself" in found.evidence
    assert "proxy_pass" in found.fix
    assert found.layer == "upgrade"


def test_haproxy_503_no_server_names_health_check() -> None:
    obs = reached(answer(503, HAPROXY_503, reason="Service Unavailable"))
    found = diagnose(obs).findings[0]
    assert found.code == "gateway_upstream_unreachable"
    assert "HAProxy itself" in found.evidence
    assert "health check" in found.fix


def test_nginx_504_names_proxy_read_timeout_and_elapsed() -> None:
    obs = reached(answer(504, NGINX_504, (("Server", "nginx"),), elapsed_ms=2012.0))
    found = diagnose(obs).findings[0]
    assert found.code == "gateway_timeout"
    assert "2.0 s fits nginx proxy_read_timeout" in found.evidence


def test_504_after_sixty_seconds_fits_nginx_default() -> None:
    obs = reached(answer(504, NGINX_504, (("Server", "nginx"),), elapsed_ms=60_040.0))
    assert "at its default of 60 s" in diagnose(obs).findings[0].evidence


def test_unknown_504_lists_defaults_that_fit() -> None:
    obs = reached(answer(504, "", elapsed_ms=60_100.0))
    found = diagnose(obs).findings[0]
    assert found.code == "gateway_timeout"
    assert "nginx proxy_read_timeout" in found.evidence


def test_apache_hung_backend_502_is_a_timeout() -> None:
    obs = reached(answer(502, APACHE_502, (("Server", "Apache/2.4.57"),), elapsed_ms=60_000.0))
    found = diagnose(obs).findings[0]
    assert found.code == "gateway_timeout"
    assert "Apache Timeout / ProxyTimeout" in found.evidence


def test_apache_quick_502_is_unreachable() -> None:
    obs = reached(answer(502, APACHE_502, (("Server", "Apache/2.4.57"),), elapsed_ms=3.0))
    assert only(diagnose(obs)) == "gateway_upstream_unreachable"


def test_backend_426_relayed_by_nginx_is_upgrade_not_forwarded() -> None:
    obs = reached(answer(426, WEBSOCKETS_426, (("Server", "nginx/1.22.1"),)))
    found = diagnose(obs).findings[0]
    assert found.code == "upgrade_not_forwarded"
    assert "relayed through nginx" in found.evidence
    assert "proxy_set_header Upgrade" in found.fix


def test_backend_505_is_upgrade_not_forwarded() -> None:
    obs = reached(answer(505, WEBSOCKETS_505, (("Server", "nginx"),)))
    assert only(diagnose(obs)) == "upgrade_not_forwarded"


def test_plain_426_is_version_mismatch() -> None:
    obs = reached(answer(426, "Upgrade Required", (("Sec-WebSocket-Version", "8"),)))
    found = diagnose(obs).findings[0]
    assert found.code == "version_mismatch"
    assert "'8'" in found.evidence


def test_400_about_upgrade_from_backend_is_upgrade_not_forwarded() -> None:
    obs = reached(answer(400, 'Can "Upgrade" only to "WebSocket".'))
    assert only(diagnose(obs)) == "upgrade_not_forwarded"


def test_200_page_is_upgrade_not_forwarded() -> None:
    obs = reached(answer(200, "<html>app</html>", (("Content-Type", "text/html"),)))
    found = diagnose(obs).findings[0]
    assert found.code == "upgrade_not_forwarded"
    assert "text/html" in found.evidence


def test_403_is_origin_rejected_and_says_what_origin_was_sent() -> None:
    obs = reached(answer(403, "Failed to open a WebSocket connection: invalid Origin header."))
    found = diagnose(obs).findings[0]
    assert found.code == "origin_rejected"
    assert "no Origin header was sent" in found.evidence
    obs = replace(obs, settings=Settings(origin="https://evil.example"))
    assert "'https://evil.example' was sent" in diagnose(obs).findings[0].evidence


def test_404_from_nginx_itself_names_location() -> None:
    obs = reached(answer(404, NGINX_404, (("Server", "nginx"),)))
    found = diagnose(obs).findings[0]
    assert found.code == "path_not_found"
    assert "'/chat'" in found.evidence
    assert "location" in found.fix


def test_401_is_unexpected_status() -> None:
    assert only(diagnose(reached(answer(401, "auth")))) == "unexpected_status"


def test_relayed_503_from_app_is_not_blamed_on_proxy() -> None:
    obs = reached(answer(503, "maintenance", (("Server", "nginx"),)))
    found = diagnose(obs).findings[0]
    assert found.code == "unexpected_status"
    assert "backend itself" in found.evidence


def test_proxy_503_with_retry_after_is_proxy_rejected() -> None:
    headers = (("Proxy-Status", "edge; error=connection_limit_reached"), ("Retry-After", "2"))
    assert only(diagnose(reached(answer(503, "", headers)))) == "proxy_rejected"


@pytest.mark.parametrize(
    ("cause", "status"),
    [
        ("upstream_connect_refused", 502),
        ("upstream_handshake_timeout", 504),
        ("no_route", 404),
        ("overloaded_queue_full", 503),
        ("upstream_bad_accept", 502),
        ("bad_upgrade_request", 400),
        ("header_too_large", 431),
        ("client_rate_limited", 429),
        ("no_healthy_upstream", 503),
    ],
)
def test_wsgate_cause_header_is_the_finding_with_the_catalogue_words(
    cause: str, status: int
) -> None:
    headers = (
        ("X-Wsgate-Cause", cause),
        ("Proxy-Status", f'wsgate; error=x; details="{cause}"'),
    )
    diagnosis = diagnose(reached(answer(status, "", headers)))
    (found,) = diagnosis.findings
    assert found.code == cause
    assert found.summary == CATALOGUE[cause].summary
    assert found.fix == CATALOGUE[cause].fix
    assert found.severity is Severity.ERROR and not diagnosis.ok
    assert f"X-Wsgate-Cause: {cause}" in found.evidence


def test_wsgate_cause_adds_what_the_doctor_knows() -> None:
    timeout = (("X-Wsgate-Cause", "upstream_handshake_timeout"),)
    found = diagnose(reached(answer(504, "", timeout, elapsed_ms=60_100))).findings[0]
    assert "fits wsgate pools.NAME.response_timeout_s at its default of 60 s" in found.evidence
    mangled = (("X-Wsgate-Cause", "bad_upgrade_request"),)
    found = diagnose(reached(answer(400, "", mangled))).findings[0]
    assert "a hop in front of wsgate changed it" in found.evidence


def test_unknown_wsgate_cause_falls_back_and_says_so() -> None:
    headers = (("X-Wsgate-Cause", "from_the_future"),)
    found = diagnose(reached(answer(503, "", headers))).findings[0]
    assert found.code == "proxy_rejected"
    assert "'from_the_future' is not in this doctor's catalogue" in found.evidence


def test_connect_to_101_blames_the_path() -> None:
    direct = answer(101, reason="Switching Protocols")
    obs = reached(
        answer(426, WEBSOCKETS_426, (("Server", "nginx"),)),
        compare=CompareObs("127.0.0.1:9000", direct),
    )
    found = diagnose(obs).findings[0]
    assert "--connect-to 127.0.0.1:9000 answered 101" in found.evidence
    assert "problem is on the path" in found.evidence
    assert diagnose(obs).layers[-1].name == "connect-to"


def test_connect_to_same_status_says_it_comes_from_there() -> None:
    same = answer(404, "not found")
    obs = reached(answer(404, "not found", (("Server", "nginx"),)), compare=CompareObs("b:1", same))
    assert "too: the status comes from there" in diagnose(obs).findings[0].evidence


def test_connect_to_failure_is_reported() -> None:
    obs = reached(answer(502, NGINX_502), compare=CompareObs("b:1", None, "TCP refused"))
    assert "--connect-to b:1: TCP refused" in diagnose(obs).findings[0].evidence


def bad_101(**fields: object) -> Observations:
    base = UpgradeObs(ACCEPT, ACCEPT, "websocket", "Upgrade")
    return upgraded(upgrade=replace(base, **fields))  # type: ignore[arg-type]


def test_bad_accept() -> None:
    diagnosis = diagnose(bad_101(accept_received="AAAA"))
    assert codes(diagnosis) == ["bad_accept"]
    assert not diagnosis.ok


@pytest.mark.parametrize(
    "fields",
    [{"upgrade": None}, {"connection": "keep-alive"}, {"extensions": "permessage-deflate"}],
)
def test_bad_upgrade_response(fields: dict[str, object]) -> None:
    assert codes(diagnose(bad_101(**fields))) == ["bad_upgrade_response"]


def test_connection_header_with_several_tokens_is_fine() -> None:
    assert codes(diagnose(bad_101(connection="keep-alive, Upgrade"))) == ["healthy"]


def test_subprotocol_not_offered_is_error() -> None:
    assert codes(diagnose(bad_101(subprotocol="chat"))) == ["subprotocol_mismatch"]


def test_subprotocol_offered_but_none_selected_is_warning() -> None:
    diagnosis = diagnose(bad_101(subprotocols_offered=("chat",)))
    assert codes(diagnosis) == ["subprotocol_mismatch", "healthy"]
    assert diagnosis.findings[0].severity is Severity.WARNING


def test_subprotocol_selected_from_offer_is_fine() -> None:
    diagnosis = diagnose(bad_101(subprotocols_offered=("a", "chat"), subprotocol="chat"))
    assert codes(diagnosis) == ["healthy"]


def test_slow_handshake_is_warning_at_threshold_plus_one() -> None:
    base = upgraded()
    assert base.answer is not None
    at = replace(base, answer=replace(base.answer, ttfb_ms=1000.0))
    over = replace(base, answer=replace(base.answer, ttfb_ms=1001.0))
    assert codes(diagnose(at)) == ["healthy"]
    assert codes(diagnose(over)) == ["slow_handshake", "healthy"]


def test_ping_timeout_is_error_and_not_healthy() -> None:
    diagnosis = diagnose(upgraded(ping=PingObs(False, 10000.0, "no pong within 10 s")))
    assert codes(diagnosis) == ["ping_timeout"]


def test_echo_and_close_problems_are_warnings() -> None:
    obs = upgraded(echo=EchoObs("hi", False, 10.0), close=CloseObs(1.0, False, error="EOF"))
    diagnosis = diagnose(obs)
    assert codes(diagnosis) == ["echo_timeout", "unclean_close", "healthy"]
    assert diagnosis.ok


def test_idle_cut_by_eof_behind_nginx_names_setting() -> None:
    base = upgraded()
    assert base.answer is not None
    nginx_101 = replace(base.answer, headers=(*base.answer.headers, ("Server", "nginx/1.22.1")))
    idle = IdleObs(10.0, (IdleSpan(10.0, IdleEnd.EOF, 3.02),))
    diagnosis = diagnose(replace(base, answer=nginx_101, idle=idle))
    found = diagnosis.findings[0]
    assert found.code == "idle_cut"
    assert "cut after 3.0 s idle, by TCP EOF without a close frame" in found.evidence
    assert "nginx proxy_read_timeout" in found.evidence
    assert "proxy_read_timeout" in found.fix
    assert not diagnosis.ok


def test_idle_bisect_reports_bracket() -> None:
    spans = (
        IdleSpan(1.0, IdleEnd.SURVIVED),
        IdleSpan(2.0, IdleEnd.SURVIVED),
        IdleSpan(3.0, IdleEnd.CLOSE_FRAME, 2.5, 1001, "going away"),
        IdleSpan(4.0, IdleEnd.EOF, 2.6),
    )
    diagnosis = diagnose(upgraded(idle=IdleObs(4.0, spans, bisect=True)))
    found = diagnosis.findings[0]
    assert "cut after 2.5 s" in found.evidence
    assert "close frame 1001" in found.evidence
    assert "quiet for 2 s survived" in found.evidence
    assert "bisect over 4 connections" in diagnosis.layers[-2].detail


def test_silent_drop() -> None:
    idle = IdleObs(350.0, (IdleSpan(350.0, IdleEnd.SILENT, 350.0),))
    found = diagnose(upgraded(idle=idle)).findings[0]
    assert found.code == "idle_cut"
    assert "no pong" in found.evidence


def test_idle_not_cut_is_healthy() -> None:
    idle = IdleObs(5.0, (IdleSpan(5.0, IdleEnd.SURVIVED),))
    assert codes(diagnose(upgraded(idle=idle))) == ["healthy"]


def burst(outcomes: tuple[tuple[str, int], ...], p95: float, single: float) -> BurstObs:
    return BurstObs(sum(n for _, n in outcomes), outcomes, p95 / 2, p95, p95, single, p95)


def test_burst_failures_are_overload_error() -> None:
    obs = upgraded(burst=burst((("101", 6), ("http 504", 4)), 2100.0, 500.0))
    diagnosis = diagnose(obs)
    assert codes(diagnosis) == ["burst_overload"]
    assert "http 504: 4" in diagnosis.findings[0].evidence


def test_burst_latency_growth_is_warning() -> None:
    grown = diagnose(upgraded(burst=burst((("101", 10),), 2000.0, 10.0)))
    assert codes(grown) == ["burst_overload", "healthy"]
    assert grown.findings[0].severity is Severity.WARNING


def test_burst_small_growth_is_fine() -> None:
    # 4x of 10 ms is 40 ms, but growth under 500 ms does not count.
    assert codes(diagnose(upgraded(burst=burst((("101", 10),), 400.0, 10.0)))) == ["healthy"]


def test_every_finding_code_is_in_the_catalogue() -> None:
    for obs in (upgraded(), reached(answer(502, NGINX_502))):
        for found in diagnose(obs).findings:
            assert found.code in CATALOGUE


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (426, "Upgrade Required", "version_mismatch"),
        (426, WEBSOCKETS_426, "upgrade_not_forwarded"),
        (
            426,
            "Failed to open a WebSocket connection: missing Upgrade header.",
            "upgrade_not_forwarded",
        ),
        (400, "Bad Request", "unexpected_status"),
        (400, "Connection header must be Upgrade", "upgrade_not_forwarded"),
    ],
)
def test_upgrade_complaints(status: int, body: str, code: str) -> None:
    assert only(diagnose(reached(answer(status, body)))) == code


def test_nginx_own_500_is_proxy_internal_error_with_worker_connections_fix() -> None:
    page = NGINX_502.replace("502 Bad Gateway", "500 Internal Server Error")
    found = diagnose(reached(answer(500, page, (("Server", "nginx"),)))).findings[0]
    assert found.code == "proxy_internal_error"
    assert "worker_connections" in found.fix


def test_app_500_relayed_is_unexpected_status() -> None:
    obs = reached(answer(500, "Traceback...", (("Server", "nginx"),)))
    assert only(diagnose(obs)) == "unexpected_status"


def test_idle_bisect_with_failed_connections_is_not_reported_as_fine() -> None:
    spans = (IdleSpan(1.0, IdleEnd.FAILED, error="handshake failed"),)
    diagnosis = diagnose(upgraded(idle=IdleObs(1.0, spans, bisect=True)))
    idle = next(layer for layer in diagnosis.layers if layer.name == "idle")
    assert not idle.ok
    assert "1 of 1 could not be opened" in idle.detail


def test_idle_close_frame_without_known_proxy_points_at_the_app() -> None:
    idle = IdleObs(10.0, (IdleSpan(10.0, IdleEnd.CLOSE_FRAME, 1.5, 1001, "idle timeout"),))
    evidence = diagnose(upgraded(idle=idle)).findings[0].evidence
    assert "by a close frame 1001 'idle timeout'" in evidence
    assert "server's WebSocket settings" in evidence


def test_idle_not_cut_mentions_server_pings() -> None:
    idle = IdleObs(60.0, (IdleSpan(60.0, IdleEnd.SURVIVED, server_pings=3),))
    row = next(layer for layer in diagnose(upgraded(idle=idle)).layers if layer.name == "idle")
    assert row.ok
    assert "the server sent 3 ping(s)" in row.detail
