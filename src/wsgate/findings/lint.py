"""Causes `wsgate lint` reports about a proxy config line.

`status` stays None: lint never answers a request. `symptom` says what a WebSocket client
sees at runtime when the line is left as it is; `severity` is the level for a location that
serves WebSockets (lint lowers it to info for other proxied locations). Facts were checked
against Debian's nginx 1.22, HAProxy 2.6 and a `websockets` backend (see docs/lint.md).
"""

from __future__ import annotations

from wsgate.findings.model import Cause, Severity

_E = Severity.ERROR
_W = Severity.WARNING
_I = Severity.INFO

CAUSES: tuple[Cause, ...] = (
    # any kind
    Cause(
        code="lint_no_ws_location",
        summary="Lint recognised no proxied location as a WebSocket one (by upgrade headers, "
        "a WebSocket-like name, or settings a WebSocket needs), so it checked each at info "
        "level only.",
        fix="If one of them serves WebSockets, name its path with `--ws-path PREFIX` (e.g. "
        "`wsgate lint --ws-path /chat nginx.conf`): lint then checks it at full level.",
        symptom="none by itself; a WebSocket location lint did not recognise can still answer "
        "the handshake with 426 or cut idle clients, while lint reports only infos",
        severity=_I,
    ),
    # nginx
    Cause(
        code="nginx_http_version",
        summary="nginx proxies with HTTP/1.0 unless told otherwise, and HTTP/1.0 cannot upgrade "
        "(nginx 1.29.7 and later default to 1.1 but still blank the Upgrade header).",
        fix="Add `proxy_http_version 1.1;` to the location.",
        symptom="the backend answers the handshake with 505 (or 400/426), so clients never get 101",
        severity=_E,
    ),
    Cause(
        code="nginx_upgrade_not_forwarded",
        summary="Upgrade is a hop-by-hop header: nginx drops it unless the location sets it again.",
        fix="Add `proxy_set_header Upgrade $http_upgrade;` to the location.",
        symptom="the backend sees a plain GET and answers 426 or 400",
        severity=_E,
    ),
    Cause(
        code="nginx_connection_not_upgrade",
        summary="nginx sends `Connection: close` (or what the config says) to the backend, "
        "so the backend never sees `Connection: upgrade`.",
        fix="Add `map $http_upgrade $connection_upgrade { default upgrade; '' close; }` to the "
        "http block and `proxy_set_header Connection $connection_upgrade;` to the location.",
        symptom="the backend answers the handshake with 426 or 400",
        severity=_E,
    ),
    Cause(
        code="nginx_connection_hardcoded",
        summary='`proxy_set_header Connection "upgrade"` sends an upgrade request with every '
        "plain HTTP request too.",
        fix="Use `map $http_upgrade $connection_upgrade { default upgrade; '' close; }` and "
        "`proxy_set_header Connection $connection_upgrade;`.",
        symptom="plain requests reach the backend with `Connection: upgrade` and no Upgrade "
        "header; most backends ignore it, strict ones answer 400",
        severity=_W,
    ),
    Cause(
        code="nginx_read_timeout",
        summary="nginx closes an upgraded connection when the backend sends nothing for "
        "`proxy_read_timeout` (60 s by default), without a close frame, and logs it only at "
        "info level.",
        fix="Raise `proxy_read_timeout` above the longest idle time (e.g. `proxy_read_timeout "
        "3600s;`), or make the application ping more often and say so in a comment.",
        symptom="idle WebSockets are cut after the timeout; clients see close code 1006",
        severity=_W,
    ),
    Cause(
        code="nginx_header_inheritance",
        summary="A `proxy_set_header` in a location replaces every `proxy_set_header` "
        "inherited from the server or http block, including Upgrade and Connection.",
        fix="Repeat the Upgrade and Connection lines in the location (or move every "
        "proxy_set_header to one level).",
        symptom="the backend answers the handshake with 426",
        severity=_E,
    ),
    Cause(
        code="nginx_worker_connections",
        summary="Each proxied WebSocket holds two nginx connections (client and backend), so "
        "a worker holds at most worker_connections / 2 WebSockets.",
        fix="Raise `worker_connections` in the events block (and the open-files limit, "
        "`worker_rlimit_nofile`) to twice the WebSockets each worker must hold.",
        symptom="past the limit handshakes get 500 from nginx itself, or no response at all "
        "when no connection is left for the client (`worker_connections are not enough` in "
        "the error log)",
        severity=_W,
    ),
    Cause(
        code="nginx_keepalive_connection",
        summary="With upstream `keepalive`, nginx reuses a backend connection only when plain "
        "requests go out without `Connection: close`; the usual WebSocket map (`'' close`) "
        "sends close on every plain request.",
        fix="Map the empty Upgrade to an empty Connection: `map $http_upgrade "
        "$connection_upgrade { default upgrade; '' ''; }` with `proxy_set_header Connection "
        "$connection_upgrade;`.",
        symptom="upstream keepalive silently unused: every plain request opens a new "
        "backend connection",
        severity=_W,
    ),
    # HAProxy
    Cause(
        code="haproxy_no_timeout_tunnel",
        summary="Without `timeout tunnel`, HAProxy applies `timeout client`/`timeout server` "
        "to an established WebSocket and closes it when it is idle that long.",
        fix="Add `timeout tunnel 1h` to the backend (or to the defaults section it uses).",
        symptom="idle WebSockets are cut after the client/server timeout; "
        "clients see close code 1006",
        severity=_W,
    ),
    Cause(
        code="haproxy_tunnel_timeout_ignored",
        summary="`timeout tunnel` is a backend setting: HAProxy ignores it in a frontend, and "
        "a defaults section reaches only the proxies that follow it.",
        fix="Move `timeout tunnel` into the backend or into the defaults section the backend uses.",
        symptom="idle WebSockets are cut after the client/server timeout",
        severity=_W,
    ),
    Cause(
        code="haproxy_no_timeout_connect",
        summary="A backend without `timeout connect` waits forever for a server that does "
        "not answer SYNs, and `timeout queue` falls back to it.",
        fix="Add `timeout connect 5s` to the defaults section or the backend.",
        symptom="handshakes to a dead server hang instead of getting 503",
        severity=_W,
    ),
    Cause(
        code="haproxy_mode_mismatch",
        summary="The frontend and the WebSocket backend disagree on `mode`: HTTP rules need "
        "mode http on both sides.",
        fix="Use `mode http` in the frontend and the backend (HAProxy switches an upgraded "
        "connection to a tunnel by itself), or `mode tcp` in both with no HTTP rules.",
        symptom="HAProxy refuses to start, or WebSockets go to the wrong backend",
        severity=_E,
    ),
    Cause(
        code="haproxy_queue_timeout",
        summary="With server `maxconn`, extra handshakes wait in the backend queue for "
        "`timeout queue`, which defaults to `timeout connect`.",
        fix="Set `timeout queue` to how long a handshake may wait (e.g. `timeout queue 10s`), "
        "and size maxconn for long-lived connections.",
        symptom="when every server is full, clients wait `timeout connect` and get 503",
        severity=_W,
    ),
    Cause(
        code="haproxy_httpchk_no_upgrade",
        summary="`option httpchk` sends a plain GET; a WebSocket-only server answers 400 or "
        "426, HAProxy marks it down and answers every handshake itself.",
        fix="Send a real handshake: `http-check send meth GET uri / ver HTTP/1.1 hdr Host "
        "localhost hdr Connection Upgrade hdr Upgrade websocket hdr Sec-WebSocket-Version 13 "
        "hdr Sec-WebSocket-Key dGhlIHNhbXBsZSBub25jZQ==` and `http-check expect status 101`.",
        symptom="every handshake gets 503 Service Unavailable",
        severity=_W,
    ),
    Cause(
        code="haproxy_upgrade_header_removed",
        summary="An `http-request` rule deletes or overwrites Connection or Upgrade before "
        "the request reaches the backend.",
        fix="Drop the rule, or guard it with `unless { hdr(upgrade) -i websocket }`.",
        symptom="the backend answers the handshake with 426 or 400",
        severity=_E,
    ),
    Cause(
        code="haproxy_balance_roundrobin",
        summary="Round robin counts new connections, not open ones, so long-lived WebSockets "
        "pile up on the servers that were up longest.",
        fix="Use `balance leastconn` for WebSocket backends.",
        symptom="uneven load after restarts; one server runs out of capacity first",
        severity=_I,
    ),
    # Apache
    Cause(
        code="apache_wstunnel_missing",
        summary="`ws://` and `wss://` ProxyPass targets need mod_proxy_wstunnel, or "
        "mod_proxy_http on Apache 2.4.47 and later.",
        fix="Load it (`a2enmod proxy_wstunnel`, or `LoadModule proxy_wstunnel_module "
        "modules/mod_proxy_wstunnel.so`), or on 2.4.47+ use an http:// target with "
        "`upgrade=websocket`.",
        symptom="Apache answers the handshake with 500 (AH01144: no protocol handler)",
        severity=_E,
    ),
    Cause(
        code="apache_shared_worker",
        summary="Apache shares one backend worker between ProxyPass lines whose URL starts "
        "with an earlier line's URL, and keeps the earlier line's parameters: a later "
        "`upgrade=websocket` or `timeout=` is ignored (AH01146).",
        fix="Put the WebSocket ProxyPass first, or give every line to that backend the same "
        "parameters.",
        symptom="the backend answers the handshake with 426 although the line says "
        "upgrade=websocket",
        severity=_E,
    ),
    Cause(
        code="apache_no_upgrade",
        summary="mod_proxy_http drops Upgrade/Connection unless the ProxyPass allows the "
        "upgrade (`upgrade=websocket`, Apache 2.4.47+) or a `ws://` rule takes the request.",
        fix="Add `upgrade=websocket` to the ProxyPass line, or a ws:// ProxyPass (or a "
        "RewriteRule on `%{HTTP:Upgrade} websocket` with [P]) before it.",
        symptom="the backend answers the handshake with 426",
        severity=_E,
    ),
    Cause(
        code="apache_timeout_short",
        summary="Apache closes an idle tunnel after `ProxyTimeout` (or `Timeout`, 60 s by "
        "default).",
        fix="Raise it for the WebSocket path: `ProxyPass ... timeout=3600` or `ProxyTimeout 3600`.",
        symptom="idle WebSockets are cut after the timeout; clients see close code 1006",
        severity=_W,
    ),
    # Caddy
    Cause(
        code="caddy_upgrade_header_removed",
        summary="A `header_up` line removes or overwrites Connection or Upgrade, which Caddy "
        "otherwise forwards for WebSockets by itself.",
        fix="Delete the header_up line; reverse_proxy needs nothing for WebSockets.",
        symptom="the backend answers the handshake with 426 or 400",
        severity=_E,
    ),
    Cause(
        code="caddy_stream_timeout",
        summary="`stream_timeout` closes every WebSocket after that long, busy or not.",
        fix="Remove it or raise it to hours (`stream_timeout 24h`).",
        symptom="every WebSocket is closed after the timeout and must reconnect",
        severity=_W,
    ),
    Cause(
        code="caddy_no_stream_close_delay",
        summary="On a config reload Caddy closes every proxied WebSocket at once (before 2.7 "
        "with close code 1001); `stream_close_delay` (2.7+) keeps them open for a while.",
        fix="Add `stream_close_delay 5m` to reverse_proxy (Caddy 2.7+), and make clients "
        "reconnect with jitter.",
        symptom="every reload disconnects all clients at the same moment (a reconnect storm)",
        severity=_W,
    ),
    # wsgate's own config
    Cause(
        code="wsgate_no_queue",
        summary="`queue_size = 0` removes the pool's wait queue, so every handshake over its "
        "limit is rejected at once.",
        fix="Delete `queue_size = 0` (the default queue holds 4096 handshakes) or set a size, "
        "with a `queue_timeout_s` clients can wait.",
        symptom="bursts of clients get 503 instead of waiting a moment",
        severity=_W,
    ),
    Cause(
        code="wsgate_short_timeout",
        summary="A connect, response or header timeout under one second fails healthy "
        "backends and slow clients under load.",
        fix="Use at least 1 s (`connect_timeout_s = 3`, `response_timeout_s = 10`, "
        "`header_timeout_s = 10`).",
        symptom="clients get 504 whenever a backend is briefly slow (408 for a short "
        "header_timeout_s)",
        severity=_W,
    ),
    Cause(
        code="wsgate_tunnel_idle_short",
        summary="`tunnel_idle_timeout_s` closes WebSockets idle that long; below a minute it "
        "cuts clients that only ping now and then.",
        fix="Use 0 (never) or several minutes, and keepalive pings shorter than it.",
        symptom="idle WebSockets are cut after the timeout",
        severity=_W,
    ),
    Cause(
        code="wsgate_ping_idle_long",
        summary="`ping_idle_s` is a minute or more: proxies and load balancers with a 60 s "
        "idle timeout (nginx proxy_read_timeout, AWS ELB, Apache) cut a quiet WebSocket "
        "before the gateway's first keepalive ping.",
        fix="Use `ping_idle_s` well under the shortest idle timeout on the way (20-30 s is "
        "common).",
        symptom="idle WebSockets are cut after 60 s although the gateway pings them",
        severity=_W,
    ),
    Cause(
        code="wsgate_ping_timeout_unused",
        summary="`ping_timeout_s` is set but `ping_idle_s` is not: the gateway sends no "
        "keepalive pings, so dead peers are never detected.",
        fix="Set `ping_idle_s` (e.g. 20) to turn the keepalive on, or delete `ping_timeout_s`.",
        symptom="a frozen backend leaves its clients hanging instead of closing them",
        severity=_I,
    ),
    Cause(
        code="wsgate_origin_any",
        summary='`allowed_origins` holds "*", which allows every origin, so pages of any site '
        "can open WebSockets with your users' cookies.",
        fix='List your sites\' origins (`"https://app.example.com"`, '
        '`"https://*.example.com"`) instead of "*", or delete the key.',
        symptom="cross-site WebSocket hijacking is not prevented",
        severity=_W,
    ),
    Cause(
        code="wsgate_health_http_on_ws",
        summary="An `http` health check sends a plain GET; a WebSocket-only backend answers "
        "it with 400 or 426 and the pool marks it down.",
        fix='Use `kind = "websocket"` in `[pools.NAME.health]`: it does a real handshake and '
        "expects 101.",
        symptom="every handshake gets 503 (no_healthy_upstream)",
        severity=_W,
    ),
    Cause(
        code="wsgate_pool_unrouted",
        summary="No route sends traffic to this pool.",
        fix='Add a `[[routes]]` entry with `pool = "NAME"`, or delete the pool.',
        symptom="the pool's backends never get traffic",
        severity=_W,
    ),
    Cause(
        code="wsgate_config_invalid",
        summary="The gateway refuses this config at start (`wsgate check` says the same).",
        fix="Correct the key the message names; the README's config reference lists every key.",
        symptom="wsgate serve exits at start with the same message",
        severity=_E,
    ),
    Cause(
        code="wsgate_route_unknown_pool",
        summary="A route names a pool that is not defined.",
        fix="Define `[pools.NAME]` or correct the route's `pool`.",
        symptom="requests on this route fail",
        severity=_E,
    ),
)
