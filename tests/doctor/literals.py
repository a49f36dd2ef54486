"""Literal observations for the doctor's unit tests: real bytes seen from real servers."""

from __future__ import annotations

from dataclasses import replace

from wsgate.doctor.observations import (
    Answer,
    AnswerKind,
    CloseObs,
    DnsObs,
    Observations,
    PingObs,
    Settings,
    Target,
    TcpAttempt,
    TcpOutcome,
    UpgradeObs,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3, and its accept value
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
    "</body>\r\n</html>\r\n"
)
NGINX_504 = NGINX_502.replace("502 Bad Gateway", "504 Gateway Time-out")
NGINX_404 = NGINX_502.replace("502 Bad Gateway", "404 Not Found")
HAPROXY_503 = (
    "<html><body><h1>503 Service Unavailable</h1>\n"
    "No server is available to handle this request.\n</body></html>\n"
)
HAPROXY_504 = (
    "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n"
    "</body></html>\n"
)
WEBSOCKETS_426 = (
    "Failed to open a WebSocket connection: invalid Connection header: close.\n\n"
    "You cannot access a WebSocket server directly with a browser. You need a WebSocket "
    "client.\n"
)
WEBSOCKETS_505 = (
    "Failed to open a WebSocket connection: unsupported protocol; expected HTTP/1.1: "
    "GET / HTTP/1.0.\n"
)
APACHE_502 = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
    "<title>502 Proxy Error</title>\n</head><body>\n<h1>Proxy Error</h1>\n"
    "<p>The proxy server received an invalid\r\nresponse from an upstream server.<br />\r\n"
    "Error reading from remote server</p>\n<hr>\n"
    "<address>Apache/2.4.57 (Debian) Server at example.org Port 80</address>\n</body></html>\n"
)

TARGET = Target("ws://127.0.0.1:8080/chat", "127.0.0.1", 8080, "/chat", False)
CONNECTED = (TcpAttempt("127.0.0.1", 8080, TcpOutcome.CONNECTED, 0.4),)
DNS = DnsObs("127.0.0.1", ("127.0.0.1",), 0.0, literal=True)


def answer(
    status: int,
    body: str = "",
    headers: tuple[tuple[str, str], ...] = (),
    elapsed_ms: float = 3.0,
    reason: str = "",
) -> Answer:
    return Answer(AnswerKind.RESPONSE, elapsed_ms, status, reason, headers, body, elapsed_ms)


def reached(ans: Answer, **changes: object) -> Observations:
    """Observations of a probe that got as far as an answer to the upgrade request."""
    obs = Observations(TARGET, Settings(), dns=DNS, tcp=CONNECTED, answer=ans, handshake_ms=3.4)
    return replace(obs, **changes)  # type: ignore[arg-type]


def upgraded(**changes: object) -> Observations:
    """A healthy probe: 101 with a valid accept, pong and clean close."""
    ok = answer(
        101,
        headers=(
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT),
        ),
        reason="Switching Protocols",
    )
    up = UpgradeObs(ACCEPT, ACCEPT, "websocket", "Upgrade")
    obs = reached(ok, upgrade=up, ping=PingObs(True, 0.3), close=CloseObs(0.5, True, 1000))
    return replace(obs, **changes)  # type: ignore[arg-type]
