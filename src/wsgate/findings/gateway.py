"""Causes the gateway produces itself: each one an HTTP status, a Proxy-Status error
type (RFC 9209 section 2.3), the close code when it ends a tunnel, and words for the
person reading the response or the log.

`CauseCode` names every code in `CAUSES`; the module refuses to load when the two
disagree, so a code in the gateway is a name the type checker knows.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from wsgate.findings.model import Cause


class CauseCode(enum.StrEnum):
    """The gateway's cause codes. A member equals its plain string, so
    `cause == "no_route"` and `CATALOGUE["no_route"]` keep working."""

    UPSTREAM_CONNECT_REFUSED = "upstream_connect_refused"
    UPSTREAM_CONNECT_TIMEOUT = "upstream_connect_timeout"
    UPSTREAM_CONNECT_FAILED = "upstream_connect_failed"
    UPSTREAM_HANDSHAKE_TIMEOUT = "upstream_handshake_timeout"
    UPSTREAM_CLOSED_EARLY = "upstream_closed_early"
    UPSTREAM_BAD_RESPONSE = "upstream_bad_response"
    UPSTREAM_BAD_ACCEPT = "upstream_bad_accept"
    UPSTREAM_TUNNEL_BROKEN = "upstream_tunnel_broken"
    NO_ROUTE = "no_route"
    BAD_UPGRADE_REQUEST = "bad_upgrade_request"
    UNSUPPORTED_VERSION = "unsupported_version"
    HEADER_TOO_LARGE = "header_too_large"
    HEADER_TIMEOUT = "header_timeout"
    BAD_REQUEST = "bad_request"
    OVERLOADED_QUEUE_FULL = "overloaded_queue_full"
    OVERLOADED_QUEUE_TIMEOUT = "overloaded_queue_timeout"
    AT_CAPACITY = "at_capacity"
    CLIENT_RATE_LIMITED = "client_rate_limited"
    NO_HEALTHY_UPSTREAM = "no_healthy_upstream"
    UPGRADE_WITH_BODY = "upgrade_with_body"
    BAD_HOST = "bad_host"
    UNSUPPORTED_HTTP_VERSION = "unsupported_http_version"
    TRAILER_TOO_LARGE = "trailer_too_large"
    BODY_TIMEOUT = "body_timeout"
    UPSTREAM_HEADER_TOO_LARGE = "upstream_header_too_large"
    OUT_OF_FILE_DESCRIPTORS = "out_of_file_descriptors"
    SHUTTING_DOWN = "shutting_down"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    SUBPROTOCOL_NOT_ALLOWED = "subprotocol_not_allowed"
    PEER_PING_TIMEOUT = "peer_ping_timeout"
    MESSAGE_TOO_BIG = "message_too_big"
    FRAME_TOO_BIG = "frame_too_big"
    MESSAGE_RATE_EXCEEDED = "message_rate_exceeded"


CAUSES: tuple[Cause, ...] = (
    Cause(
        code="upstream_connect_refused",
        status=502,
        proxy_status="connection_refused",
        summary="The backend refused the TCP connection: nothing listens on its port.",
        fix="Start the backend or correct its address in the pool; check that it listens "
        "on the address the gateway connects to (127.0.0.1 vs 0.0.0.0 vs ::1).",
        symptom="clients get 502 Bad Gateway",
    ),
    Cause(
        code="upstream_connect_timeout",
        status=504,
        proxy_status="connection_timeout",
        summary="The TCP connection to the backend did not complete in time.",
        fix="Check that the backend host is up and that no firewall drops SYNs; a full "
        "listen backlog also looks like this: raise the backend's backlog or lower the "
        "handshake concurrency. Setting: pools.NAME.connect_timeout_s.",
        symptom="clients get 504 Gateway Timeout after the connect timeout",
    ),
    Cause(
        code="upstream_connect_failed",
        status=502,
        proxy_status="destination_unavailable",
        summary="The TCP connection to the backend failed (unreachable host or network).",
        fix="Check the backend's address and the route to it from the gateway's host.",
        symptom="clients get 502 Bad Gateway",
    ),
    Cause(
        code="upstream_handshake_timeout",
        status=504,
        proxy_status="http_response_timeout",
        summary="The backend accepted the connection but sent no response head in time.",
        fix="The backend is overloaded or hung: check its workers and event loop. "
        "Setting: pools.NAME.response_timeout_s.",
        symptom="clients get 504 Gateway Timeout",
    ),
    Cause(
        code="upstream_closed_early",
        status=502,
        proxy_status="connection_terminated",
        summary="The backend closed the connection before sending a complete response head.",
        fix="Look at the backend's log for a crash or a rejected request; a backend that "
        "speaks only HTTP/2, TLS or another protocol on that port also does this.",
        symptom="clients get 502 Bad Gateway",
    ),
    Cause(
        code="upstream_bad_response",
        status=502,
        proxy_status="http_protocol_error",
        summary="The backend answered with bytes that are not a valid HTTP/1.1 response.",
        fix="Check that the pool points at an HTTP/1.1 server and not at TLS, HTTP/2 "
        "(h2c) or another protocol's port.",
        symptom="clients get 502 Bad Gateway",
    ),
    Cause(
        code="upstream_bad_accept",
        status=502,
        proxy_status="http_upgrade_failed",
        summary="The backend answered 101 with a Sec-WebSocket-Accept that does not match "
        "the key (RFC 6455 section 4.2.2).",
        fix="Another proxy between wsgate and the app rewrites Sec-WebSocket-Key, or the "
        "app computes the accept value wrongly; send the key through unchanged.",
        symptom="clients get 502 Bad Gateway instead of a broken WebSocket",
    ),
    Cause(
        code="upstream_tunnel_broken",
        status=None,
        proxy_status="connection_terminated",
        summary="The backend closed an established WebSocket without a close frame.",
        fix="Look at the backend's log for a crash or restart; the client got close "
        "code 1014 (bad gateway) when the gateway was at a frame boundary.",
        close_code=1014,  # CloseCode.BAD_GATEWAY
        symptom="clients see close code 1014 or 1006",
    ),
    Cause(
        code="no_route",
        status=404,
        proxy_status="destination_not_found",
        summary="No route matches this request's Host and path.",
        fix="Add a [[routes]] entry whose host and path_prefix match, or a catch-all "
        'route with path_prefix = "/".',
        symptom="clients get 404 Not Found",
    ),
    Cause(
        code="bad_upgrade_request",
        status=400,
        proxy_status="http_request_error",
        summary="The WebSocket upgrade request is malformed (RFC 6455 section 4.2.1).",
        fix="The client must send GET over HTTP/1.1 with Upgrade: websocket, Connection: "
        "Upgrade and a Sec-WebSocket-Key of 16 base64-encoded bytes.",
        symptom="clients get 400 Bad Request",
    ),
    Cause(
        code="unsupported_version",
        status=426,
        proxy_status="http_request_error",
        summary="The client asked for a WebSocket version other than 13.",
        fix="Use a client that speaks RFC 6455 (Sec-WebSocket-Version: 13).",
        symptom="clients get 426 Upgrade Required",
    ),
    Cause(
        code="header_too_large",
        status=431,
        proxy_status="http_request_error",
        summary="The request head is larger than the gateway accepts.",
        fix="Send smaller cookies or headers, or raise server.max_header_bytes.",
        symptom="clients get 431 Request Header Fields Too Large",
    ),
    Cause(
        code="header_timeout",
        status=408,
        proxy_status="http_request_error",
        summary="The client did not finish sending its request head in time.",
        fix="A slow or stalled client (or a slowloris attack); raise "
        "server.header_timeout_s only if real clients are that slow.",
        symptom="clients get 408 Request Timeout",
    ),
    Cause(
        code="bad_request",
        status=400,
        proxy_status="http_request_error",
        summary="The request is not valid HTTP/1.1.",
        fix="Check the client; the gateway accepts HTTP/1.0 and HTTP/1.1 requests only.",
        symptom="clients get 400 Bad Request",
    ),
    Cause(
        code="overloaded_queue_full",
        status=503,
        proxy_status="connection_limit_reached",
        summary="Too many handshakes are waiting for this pool; the wait queue is full.",
        fix="Retry after the Retry-After delay; operators: add backends or raise "
        "pools.NAME.queue_size.",
        symptom="clients get 503 with Retry-After",
        retry_after=True,
    ),
    Cause(
        code="overloaded_queue_timeout",
        status=503,
        proxy_status="connection_limit_reached",
        summary="The handshake waited in the pool's queue longer than its queue timeout, "
        "or would have: at the rate the pool completes handshakes, its turn would come after it.",
        fix="Retry after the Retry-After delay; operators: add backends or raise "
        "pools.NAME.queue_timeout_s.",
        symptom="clients get 503 with Retry-After",
        retry_after=True,
    ),
    Cause(
        code="at_capacity",
        status=503,
        proxy_status="connection_limit_reached",
        summary="The gateway or every backend holds its maximum number of connections.",
        fix="Retry after the Retry-After delay; operators: raise max_connections or add backends.",
        symptom="clients get 503 with Retry-After",
        retry_after=True,
    ),
    Cause(
        code="client_rate_limited",
        status=429,
        proxy_status="http_request_denied",
        summary="This client address opened connections faster or more often than allowed.",
        fix="Retry after the Retry-After delay, with back-off and jitter.",
        symptom="clients get 429 Too Many Requests",
        retry_after=True,
    ),
    Cause(
        code="no_healthy_upstream",
        status=503,
        proxy_status="destination_unavailable",
        summary="Every backend of the pool is marked down by health checks or ejection.",
        fix="Look at the backends' health; the gateway retries them in the background.",
        symptom="clients get 503 with Retry-After",
        retry_after=True,
    ),
    Cause(
        code="upgrade_with_body",
        status=400,
        proxy_status="http_request_error",
        summary="An upgrade request announced a body (Content-Length or Transfer-Encoding); "
        "the gateway refuses it, since a backend that declines the upgrade could read the "
        "body as another request.",
        fix="Send the WebSocket upgrade as a GET without a body; data goes in frames after "
        "the 101.",
        symptom="clients get 400 Bad Request",
    ),
    Cause(
        code="bad_host",
        status=400,
        proxy_status="http_request_error",
        summary="The request has no Host header (required in HTTP/1.1) or more than one.",
        fix="Send exactly one Host header (RFC 9112 section 3.2).",
        symptom="clients get 400 Bad Request",
    ),
    Cause(
        code="unsupported_http_version",
        status=505,
        proxy_status="http_request_error",
        summary="The request line names an HTTP version other than 1.0 or 1.1.",
        fix="Speak HTTP/1.1 to the gateway (HTTP/2 needs TLS with ALPN, which this "
        "listener does not offer).",
        symptom="clients get 505 HTTP Version Not Supported",
    ),
    Cause(
        code="trailer_too_large",
        status=431,
        proxy_status="http_request_error",
        summary="The chunked request's trailer fields are larger than the gateway accepts.",
        fix="Send fewer or smaller trailer fields; trailers count against server.max_header_bytes.",
        symptom="clients get 431 Request Header Fields Too Large",
    ),
    Cause(
        code="body_timeout",
        status=408,
        proxy_status="http_request_error",
        summary="The client stopped sending its request body: no body bytes arrived for "
        "longer than the body timeout.",
        fix="A stalled or very slow client; raise server.body_timeout_s only if real "
        "clients pause that long in the middle of an upload.",
        symptom="clients get 408 Request Timeout",
    ),
    Cause(
        code="upstream_header_too_large",
        status=502,
        proxy_status="http_response_incomplete",
        summary="The backend sent a response head larger than the gateway accepts.",
        fix="Make the backend send fewer or smaller headers (cookies), or raise "
        "server.max_response_header_bytes; nginx reports this as 'upstream sent too big "
        "header'.",
        symptom="clients get 502 Bad Gateway",
    ),
    Cause(
        code="out_of_file_descriptors",
        status=503,
        proxy_status="proxy_internal_error",
        summary="The gateway ran out of file descriptors (EMFILE/ENFILE) and could not open "
        "a connection to the backend; the backend is not at fault.",
        fix="Raise the gateway's open-file limit (LimitNOFILE= in systemd, ulimit -n) or "
        "lower server.max_connections; retry after the Retry-After delay.",
        symptom="clients get 503 with Retry-After",
        retry_after=True,
    ),
    Cause(
        code="shutting_down",
        status=503,
        proxy_status="proxy_internal_response",
        summary="The gateway is draining for a restart and takes no new requests.",
        fix="Retry after the Retry-After delay; another gateway instance will answer.",
        close_code=1001,  # CloseCode.GOING_AWAY: tunnels still open when the drain ends
        symptom="clients get 503 with Retry-After during a deploy; WebSockets still open "
        "when the drain ends get close code 1001",
        retry_after=True,
    ),
    Cause(
        code="origin_not_allowed",
        status=403,
        proxy_status="http_request_denied",
        summary="The WebSocket handshake came from a web page whose Origin is not in the "
        "pool's allowed_origins (RFC 6455 section 10.2).",
        fix="If the page is yours, add its origin (scheme://host[:port], or "
        "https://*.example.com for subdomains) to pools.NAME.allowed_origins; otherwise "
        "this is another site's page trying to use your users' cookies (cross-site "
        "WebSocket hijacking), refused as it should be.",
        symptom="browsers get 403 Forbidden on the handshake",
    ),
    Cause(
        code="subprotocol_not_allowed",
        status=400,
        proxy_status="http_request_error",
        summary="None of the subprotocols the client offered (Sec-WebSocket-Protocol) is in "
        "the pool's allowed_subprotocols.",
        fix="Offer a subprotocol the pool allows, add it to pools.NAME.allowed_subprotocols, "
        'or set subprotocol_fallback = "forward" to pass such requests on without the '
        "header.",
        symptom="clients get 400 Bad Request on the handshake",
    ),
    Cause(
        code="peer_ping_timeout",
        status=None,
        proxy_status="connection_timeout",
        summary="One side of a WebSocket sent nothing for ping_idle_s and did not answer the "
        "gateway's ping within ping_timeout_s: a dead peer (a crashed or frozen process, a "
        "lost network path); the other side got a close frame.",
        fix="Look at the side named in the log: a backend that froze (GC pause, deadlock, "
        "stopped process) or a client that vanished. Raise pools.NAME.ping_timeout_s if "
        "healthy peers answer that slowly.",
        close_code=1011,  # CloseCode.INTERNAL_ERROR to the client; 1001 to the backend
        symptom="clients of a frozen backend get close code 1011 instead of hanging",
    ),
    Cause(
        code="message_too_big",
        status=None,
        proxy_status="http_request_denied",
        summary="A WebSocket message (its frames added up) was larger than the pool's "
        "max_message_bytes; the sender got close code 1009.",
        fix="Send smaller messages (split them in the application) or raise "
        "pools.NAME.max_message_bytes.",
        close_code=1009,  # CloseCode.MESSAGE_TOO_BIG to the sender; 1001 or 1011 to the other
        symptom="the connection closes with 1009 after a large message",
    ),
    Cause(
        code="frame_too_big",
        status=None,
        proxy_status="http_request_denied",
        summary="A WebSocket frame was larger than the pool's max_frame_bytes; the sender "
        "got close code 1009.",
        fix="Fragment large messages into smaller frames, or raise pools.NAME.max_frame_bytes.",
        close_code=1009,  # CloseCode.MESSAGE_TOO_BIG
        symptom="the connection closes with 1009 after a large frame",
    ),
    Cause(
        code="message_rate_exceeded",
        status=None,
        proxy_status="http_request_denied",
        summary="The client sent messages faster than the pool's max_messages_per_s (with "
        "message_burst) on one connection; it got close code 1008 (policy violation).",
        fix="Batch messages in the client, or raise pools.NAME.max_messages_per_s or "
        "message_burst.",
        close_code=1008,  # CloseCode.POLICY_VIOLATION
        symptom="chatty clients are closed with 1008",
    ),
)


def check_codes(codes: Iterable[str], causes: Iterable[Cause]) -> None:
    """Raise ValueError unless `codes` and the causes' codes are the same set, each once."""
    named, listed = list(codes), [item.code for item in causes]
    problems = []
    if missing := sorted(set(listed) - set(named)):
        problems.append(f"causes without a CauseCode member: {', '.join(missing)}")
    if stray := sorted(set(named) - set(listed)):
        problems.append(f"CauseCode members without a cause: {', '.join(stray)}")
    if twice := sorted({code for code in listed if listed.count(code) > 1}):
        problems.append(f"causes listed twice: {', '.join(twice)}")
    if problems:
        raise ValueError("gateway causes and CauseCode disagree: " + "; ".join(problems))


check_codes(CauseCode, CAUSES)
