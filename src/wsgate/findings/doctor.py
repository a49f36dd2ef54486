"""Causes the doctor names after probing a URL: one per way a WebSocket handshake or
connection fails, with the layer it belongs to in the summary's words.

The doctor adds evidence (what it observed, with numbers) and, when it recognises the
intermediary that answered, a fix for that product; `fix` here is the general one.
"""

from __future__ import annotations

from wsgate.findings.model import Cause, Severity

CAUSES: tuple[Cause, ...] = (
    Cause(
        code="dns_failure",
        summary="The host name does not resolve to any address.",
        fix="Check the spelling of the host and its DNS records (A/AAAA); from inside a "
        "container or VPN, check which resolver it uses.",
        symptom="clients fail before connecting",
    ),
    Cause(
        code="tcp_refused",
        summary="Every address refused the TCP connection: nothing listens on that port.",
        fix="Start the server or proxy, or correct the port; check that it listens on the "
        "address clients use (127.0.0.1 vs 0.0.0.0 vs ::1).",
        symptom="clients get 'connection refused'",
    ),
    Cause(
        code="tcp_timeout",
        summary="The TCP connection did not complete in time.",
        fix="A firewall or security group drops the SYN, the host is down, or the "
        "listener's accept backlog is full (the server is not accepting): check each.",
        symptom="clients hang, then fail with a timeout",
    ),
    Cause(
        code="tcp_failed",
        summary="The TCP connection failed for a reason other than refusal or timeout.",
        fix="Read the error: 'no route to host' and 'network unreachable' point at routing "
        "or a firewall that rejects.",
        symptom="clients fail before the handshake",
    ),
    Cause(
        code="tcp_partial",
        summary="Some addresses of the host accept connections and others do not.",
        severity=Severity.WARNING,
        fix="Clients that try the failing address first wait or fail: make the server listen "
        "on every address the name resolves to (IPv4 and IPv6), or remove the stale record.",
        symptom="some clients connect slowly or not at all",
    ),
    Cause(
        code="tls_failed",
        summary="The TLS handshake failed.",
        fix="Check that the port speaks TLS (not plain HTTP: then use ws://) and that the "
        "server and client share a TLS version and cipher.",
        symptom="clients fail with a TLS error",
    ),
    Cause(
        code="tls_cert_untrusted",
        summary="The server's certificate is not signed by an authority the client trusts.",
        fix="Serve the full chain (leaf and intermediates) signed by a public CA, or give "
        "clients the private CA (--cacert here); self-signed certificates fail in browsers.",
        symptom="browsers refuse the connection; clients report certificate verify failed",
    ),
    Cause(
        code="tls_cert_expired",
        summary="The server's certificate has expired (or is not yet valid).",
        fix="Renew the certificate and reload the server; automate renewal (ACME) and "
        "check the clock of the server.",
        symptom="every client refuses the connection",
    ),
    Cause(
        code="tls_hostname_mismatch",
        summary="The server's certificate does not name the host in the URL.",
        fix="Add the host to the certificate's subjectAltName, or connect with the name the "
        "certificate was issued for; check SNI routing on the proxy.",
        symptom="clients report a hostname mismatch",
    ),
    Cause(
        code="tls_no_http11_alpn",
        summary="The TLS server refused ALPN 'http/1.1': it speaks only HTTP/2 (h2) here, "
        "which cannot carry an RFC 6455 handshake.",
        fix="Allow http/1.1 in the server's ALPN list on this listener (WebSocket over "
        "HTTP/2 needs RFC 8441 support on both ends).",
        symptom="the TLS handshake fails with 'no application protocol'",
    ),
    Cause(
        code="connection_dropped",
        summary="The server closed the connection without sending any HTTP status.",
        fix="An overloaded proxy does this (nginx out of worker_connections logs "
        "'worker_connections are not enough'); so does a TLS or HTTP/2-only port "
        "reached with plain HTTP/1.1: check the error log of the first hop.",
        symptom="clients see close code 1006 or 'connection reset' with no status",
    ),
    Cause(
        code="response_timeout",
        summary="No HTTP response arrived before the doctor's timeout.",
        fix="The server or a proxy holds the request: raise --timeout above the proxy's "
        "own timeout (nginx proxy_read_timeout, 60 s by default) to see which one answers.",
        symptom="clients hang during the handshake",
    ),
    Cause(
        code="bad_response",
        summary="The server answered with bytes that are not an HTTP/1.1 response.",
        fix="Check that this port speaks HTTP/1.1: a TLS port needs wss://, and an "
        "HTTP/2-only (h2c) or non-HTTP service cannot take a WebSocket handshake.",
        symptom="clients report an invalid HTTP response",
    ),
    Cause(
        code="upgrade_not_forwarded",
        summary="The Upgrade/Connection headers did not reach the WebSocket server: a proxy "
        "dropped them or sent HTTP/1.0 upstream, so the app answered as to plain HTTP.",
        fix="Forward the upgrade: nginx needs proxy_http_version 1.1; proxy_set_header "
        "Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade (a map); "
        "Apache needs mod_proxy_wstunnel or 'upgrade=websocket' on ProxyPass.",
        symptom="clients get 200, 400, 426 or 505 instead of 101",
    ),
    Cause(
        code="version_mismatch",
        summary="The server answered 426 Upgrade Required: it does not accept this "
        "WebSocket version or protocol as sent.",
        fix="Look at the Sec-WebSocket-Version and Upgrade headers of the answer: use the "
        "version it lists (RFC 6455 is 13), or TLS if it asks for it.",
        symptom="clients get 426 Upgrade Required",
    ),
    Cause(
        code="origin_rejected",
        summary="The server refused the handshake with 403 Forbidden, usually because of "
        "the Origin header.",
        fix="Add the page's origin to the server's allowed origins (and check auth "
        "cookies or tokens); probe again with --origin set to the page's origin.",
        symptom="browsers get 403 Forbidden",
    ),
    Cause(
        code="path_not_found",
        summary="No WebSocket endpoint at this path: the answer is 404 Not Found.",
        fix="Check the path in the URL against the server's routes, and the proxy's "
        "location/path prefix rewriting (a trailing slash on nginx proxy_pass strips it).",
        symptom="clients get 404 Not Found",
    ),
    Cause(
        code="unexpected_status",
        summary="The server answered the upgrade request with a status other than 101.",
        fix="Read the status and body in the evidence: 401 wants credentials, 3xx a "
        "different URL, 5xx an error in the app.",
        symptom="clients fail the handshake with this status",
    ),
    Cause(
        code="bad_accept",
        summary="The 101 answer's Sec-WebSocket-Accept does not match the key sent "
        "(RFC 6455 section 4.2.2).",
        fix="Something rewrites Sec-WebSocket-Key or the answer on the way (a proxy or "
        "cache), or the server computes the accept value wrongly.",
        symptom="browsers fail with 'Incorrect Sec-WebSocket-Accept header value'",
    ),
    Cause(
        code="bad_upgrade_response",
        summary="The 101 answer lacks Upgrade: websocket or Connection: Upgrade, or "
        "accepts an extension that was not offered.",
        fix="The server or a proxy mangles the 101 answer: it must carry Upgrade: "
        "websocket and Connection: Upgrade and only extensions the client offered.",
        symptom="clients fail the connection right after 101",
    ),
    Cause(
        code="subprotocol_mismatch",
        summary="The server's Sec-WebSocket-Protocol answer does not fit the subprotocols "
        "the client offered.",
        fix="Offer a subprotocol the server supports (--subprotocol), or make the server "
        "select one of the offered values, never another.",
        symptom="clients close the connection (1002) or speak the wrong protocol",
    ),
    Cause(
        code="gateway_upstream_unreachable",
        summary="A proxy answered 502/503 itself: it could not reach a healthy backend.",
        fix="Check that the backend runs and that the proxy points at its address and "
        "port; the proxy's error log names the failing upstream.",
        symptom="clients get 502 Bad Gateway or 503 Service Unavailable",
    ),
    Cause(
        code="gateway_timeout",
        summary="A proxy gave up waiting for its backend and answered 504 (or 502 on Apache).",
        fix="Find why the backend is slow to answer the handshake, or raise the proxy's "
        "timeout named in the evidence.",
        symptom="clients get 504 Gateway Timeout after a fixed delay",
    ),
    Cause(
        code="proxy_internal_error",
        summary="A proxy answered 500 itself: it failed before the request reached the backend.",
        fix="Read the proxy's error log for that request: running out of connections, a "
        "broken config or a full disk are the usual causes.",
        symptom="clients get 500 Internal Server Error from the proxy",
    ),
    Cause(
        code="proxy_rejected",
        summary="A proxy refused the request itself (rate limit, overload or draining).",
        fix="Follow the proxy's explanation in the evidence; retry after Retry-After.",
        symptom="clients get 429 or 503 from the proxy",
    ),
    Cause(
        code="ping_timeout",
        summary="The WebSocket opened but no pong came back for a ping.",
        fix="The server or a proxy does not pass control frames, or the connection is "
        "stalled: check that the proxy tunnels bytes after 101 and the server answers pings.",
        symptom="clients' keepalive pings time out and they reconnect",
    ),
    Cause(
        code="echo_timeout",
        summary="No message came back for the message sent with --echo.",
        severity=Severity.WARNING,
        fix="Expected when the endpoint is not an echo service; otherwise check that the "
        "server handles messages and that data frames pass the proxy.",
        symptom="clients get no answer to their messages",
    ),
    Cause(
        code="unclean_close",
        summary="The server did not answer the close frame with its own before closing.",
        severity=Severity.WARNING,
        fix="Clients see 1006 (abnormal closure) instead of 1000: let the server finish "
        "the closing handshake (RFC 6455 section 7) before closing TCP.",
        symptom="clients log close code 1006",
    ),
    Cause(
        code="idle_cut",
        summary="An idle WebSocket was cut by a timeout on the way.",
        fix="Send pings more often than the timeout (every 20-30 s is common), or raise the "
        "timeout named in the evidence.",
        symptom="quiet connections drop after a fixed time, often with 1006",
    ),
    Cause(
        code="server_going_away",
        summary="The server closed the WebSocket because it is shutting down or restarting "
        "(close code 1012, or 1001 with a reason that says so): no timeout cut it.",
        fix="Nothing on the path timed out: clients should reconnect after a jittered delay "
        "(1012 asks them to). If no deploy or restart was under way, find out from the "
        "server's log why it stopped.",
        symptom="every WebSocket closes at once with 1001 or 1012 during a deploy",
    ),
    Cause(
        code="idle_kept_alive",
        summary="A wsgate on the way keeps idle WebSockets alive with its own keepalive pings.",
        severity=Severity.INFO,
        fix="Nothing to fix for the connection; to measure the idle timeouts behind the "
        "gateway, probe the backend or the next proxy directly.",
        symptom="",
    ),
    Cause(
        code="burst_overload",
        summary="Simultaneous handshakes fail or slow down where a single one does not.",
        fix="The server or proxy limits concurrent handshakes (accept backlog, worker "
        "connections, a slow handshake handler): raise the limit, add workers, or make "
        "clients reconnect with jittered back-off.",
        symptom="reconnect storms after a deploy fail with 502/503/504",
    ),
    Cause(
        code="slow_handshake",
        summary="The handshake succeeded but took long.",
        severity=Severity.WARNING,
        fix="Time to first byte of the 101 is high: check the server's handshake handler "
        "(auth calls, database lookups) and the proxy's queueing.",
        symptom="clients wait before the connection opens",
    ),
    Cause(
        code="tls_cert_expiring",
        summary="The server's certificate expires soon.",
        severity=Severity.WARNING,
        fix="Renew the certificate before it expires and check that renewal is automated.",
        symptom="every client will refuse the connection once it expires",
    ),
    Cause(
        code="healthy",
        summary="The WebSocket handshake, ping and close all work.",
        severity=Severity.INFO,
        fix="Nothing to fix.",
        symptom="",
    ),
)
