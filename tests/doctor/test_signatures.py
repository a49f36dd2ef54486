"""Recognising which hop answered, from literal answers. No sockets."""

from __future__ import annotations

import pytest

from tests.doctor.literals import APACHE_502, HAPROXY_503, HAPROXY_504, NGINX_502, answer
from wsgate.doctor.signatures import (
    ProxyStatusEntry,
    parse_proxy_status,
    recognise,
    timeout_setting,
)


@pytest.mark.parametrize(
    ("status", "body", "headers", "product"),
    [
        (502, NGINX_502, (("Server", "nginx/1.22.1"),), "nginx"),
        (502, NGINX_502.replace("nginx/1.22.1", "openresty"), (), "nginx"),
        (503, HAPROXY_503, (), "HAProxy"),
        (504, HAPROXY_504, (), "HAProxy"),
        (503, "no healthy upstream", (("server", "envoy"),), "Envoy"),
        (
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: "
            "connection failure",
            (),
            "Envoy",
        ),
        (502, APACHE_502, (("Server", "Apache/2.4.57 (Debian)"),), "Apache"),
        (502, "", (("Server", "Caddy"),), "Caddy"),
        (502, "Bad Gateway", (), "Traefik"),
        (502, "<html>error code: 521</html>", (("Server", "cloudflare"),), "Cloudflare"),
        (522, "", (("Server", "cloudflare"), ("CF-RAY", "8a1b-AMS")), "Cloudflare"),
        (
            502,
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
            "Gateway</h1></center></body></html>",
            (("Server", "awselb/2.0"),),
            "AWS ELB",
        ),
    ],
)
def test_proxy_error_pages_are_generated_by_the_proxy(
    status: int, body: str, headers: tuple[tuple[str, str], ...], product: str
) -> None:
    who = recognise(answer(status, body, headers))
    assert who.product == product
    assert who.generated
    assert who.who == f"{product} itself"


def test_server_header_alone_means_relayed() -> None:
    body = "Failed to open a WebSocket connection: invalid Connection header: close.\n"
    who = recognise(answer(426, body, (("Server", "nginx/1.22.1"),)))
    assert who.product == "nginx"
    assert not who.generated
    assert who.who == "the backend (relayed through nginx)"
    assert "not its own error page" in who.evidence[0]


def test_bare_bad_gateway_from_known_server_is_not_traefik() -> None:
    who = recognise(answer(502, "Bad Gateway", (("Server", "nginx"),)))
    assert who.product == "nginx"
    assert not who.generated


def test_no_clue_at_all() -> None:
    who = recognise(answer(404, "nope"))
    assert who.product is None
    assert who.who == "the server"


def test_via_header_names_an_unknown_proxy() -> None:
    who = recognise(answer(404, "nope", (("Via", "1.1 squid"),)))
    assert who.product == "a proxy (Via: 1.1 squid)"
    assert not who.generated


def test_wsgate_cause_header_wins() -> None:
    headers = (
        ("X-Wsgate-Cause", "upstream_connect_refused"),
        ("Proxy-Status", 'wsgate; error=connection_refused; details="upstream_connect_refused"'),
    )
    who = recognise(answer(502, "...", headers))
    assert who.product == "wsgate"
    assert who.generated
    assert who.wsgate_cause == "upstream_connect_refused"
    assert who.proxy_status == (
        ProxyStatusEntry("wsgate", "connection_refused", "upstream_connect_refused"),
    )


def test_proxy_status_error_names_the_proxy() -> None:
    who = recognise(answer(504, "", (("Proxy-Status", "ExampleCDN; error=http_response_timeout"),)))
    assert who.product == "ExampleCDN"
    assert who.generated


def test_parse_proxy_status_lists_and_quotes() -> None:
    values = ['origin-proxy; received-status=503, "cdn"; error=dns_timeout; details="a, \\"b\\""']
    assert parse_proxy_status(values) == (
        ProxyStatusEntry("origin-proxy"),
        ProxyStatusEntry("cdn", "dns_timeout", 'a, "b"'),
    )
    assert parse_proxy_status([]) == ()
    assert parse_proxy_status([" , ;"]) == ()


@pytest.mark.parametrize(
    ("product", "phase", "elapsed", "words"),
    [
        ("nginx", "response", 60.3, "fits nginx proxy_read_timeout at its default of 60 s"),
        ("nginx", "response", 2.0, "nginx proxy_read_timeout set to about 2 s (default 60 s)"),
        ("HAProxy", "idle", 3.1, "HAProxy timeout tunnel"),
        ("Envoy", "idle", 300.0, "Envoy stream_idle_timeout at its default of 300 s"),
        ("Cloudflare", "idle", 100.2, "default of 100 s"),
        (None, "idle", 60.0, "fits the default of nginx proxy_read_timeout"),
        (None, "idle", 62.9, "nginx"),
        (None, "idle", 63.5, "looks like a timeout of about 64 s"),
        (None, "response", 7.0, "about 7 s"),
    ],
)
def test_timeout_setting(product: str | None, phase: str, elapsed: float, words: str) -> None:
    assert words in timeout_setting(product, phase, elapsed)
