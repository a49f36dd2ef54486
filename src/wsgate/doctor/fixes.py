"""Fixes specific to the intermediary recognised, per finding code.

Pure data: `fix_for(code, product)` returns the product's words, or None so that the
caller falls back to the catalogue's general fix.
"""

from __future__ import annotations

from wsgate.doctor.signatures import (
    APACHE,
    AWS_ELB,
    CADDY,
    CLOUDFLARE,
    ENVOY,
    HAPROXY,
    NGINX,
    TRAEFIK,
    WSGATE,
)

# connection_dropped when a connection that sent nothing is closed too: whatever accepts
# on the port does not wait for a request.
TCP_PROXY_DROP_FIX = (
    "A TCP-level proxy or port forwarder accepts the connection and closes it because its "
    "own backend is down or refuses: HAProxy or nginx stream in mode tcp, docker-proxy "
    "for a published port, kubectl port-forward, an L4 load balancer. Start the backend "
    "it forwards to, or correct the address and port it forwards to (HAProxy logs the "
    "session with termination state 'SC'). A server that drops connections at accept "
    "when overloaded (nginx out of worker_connections) looks the same: its error log says so."
)

_FIXES: dict[tuple[str, str], str] = {
    ("upgrade_not_forwarded", NGINX): (
        "In the nginx location add: proxy_http_version 1.1; proxy_set_header Upgrade "
        "$http_upgrade; proxy_set_header Connection $connection_upgrade; with "
        "map $http_upgrade $connection_upgrade { default upgrade; '' close; } in http {} "
        "(nginx sends HTTP/1.0 and drops hop-by-hop headers by default)."
    ),
    ("upgrade_not_forwarded", APACHE): (
        "Load mod_proxy_wstunnel and use ProxyPass /path ws://backend/path upgrade=websocket "
        "(Apache 2.4.47+), or a RewriteRule on Upgrade: websocket with [P] to ws://."
    ),
    ("upgrade_not_forwarded", HAPROXY): (
        "HAProxy forwards upgrades in mode http by itself: look for http-request del-header "
        "or set-header rules on Connection/Upgrade, and for mode tcp/http mismatches."
    ),
    ("upgrade_not_forwarded", ENVOY): (
        "Add upgrade_configs: [{upgrade_type: websocket}] to the HTTP connection manager "
        "(or the route)."
    ),
    ("upgrade_not_forwarded", CADDY): (
        "Caddy forwards upgrades by default: remove header_up rules that touch Connection "
        "or Upgrade, and check that the request reaches reverse_proxy."
    ),
    ("upgrade_not_forwarded", TRAEFIK): (
        "Traefik forwards upgrades by default: check middlewares that rewrite headers and "
        "that the router's service points at the WebSocket server."
    ),
    ("upgrade_not_forwarded", CLOUDFLARE): (
        "Enable WebSockets for the zone (Network settings) and check Workers or page rules "
        "in front of the origin."
    ),
    ("upgrade_not_forwarded", AWS_ELB): (
        "A Classic ELB HTTP listener cannot upgrade: use an Application Load Balancer or a "
        "TCP/SSL listener."
    ),
    ("gateway_upstream_unreachable", NGINX): (
        "nginx could not connect to its upstream: check the proxy_pass/upstream address "
        "and port and that the backend runs; error.log shows 'connect() failed (111: "
        "Connection refused) while connecting to upstream'."
    ),
    ("gateway_upstream_unreachable", HAPROXY): (
        "HAProxy has no usable server for this backend: it is down, refused the "
        "connection, or its health check marks it DOWN. A plain 'option httpchk' GET to a "
        "WebSocket-only server gets 400/426 and fails: check a plain HTTP path "
        "(http-check send meth GET uri /health) or use a TCP check; 'show servers state' "
        "on the stats socket lists the state."
    ),
    ("gateway_upstream_unreachable", ENVOY): (
        "Envoy's cluster has no healthy endpoint or the connection failed: check the "
        "cluster's endpoints, health checks and outlier detection (/clusters on the admin "
        "port)."
    ),
    ("gateway_upstream_unreachable", APACHE): (
        "Apache's mod_proxy could not reach the backend: check the ProxyPass target and "
        "the error log (AH00957 connect failed, AH01114)."
    ),
    ("gateway_upstream_unreachable", CADDY): (
        "Caddy's reverse_proxy could not dial the upstream: check the upstream address and "
        "Caddy's log ('dial tcp ... connection refused')."
    ),
    ("gateway_upstream_unreachable", TRAEFIK): (
        "Traefik could not reach the service's server: check the service URL, the "
        "container's network and the health check."
    ),
    ("gateway_upstream_unreachable", CLOUDFLARE): (
        "Cloudflare could not get a response from your origin (52x): check that the origin "
        "runs and accepts connections from Cloudflare's address ranges."
    ),
    ("gateway_upstream_unreachable", AWS_ELB): (
        "The target group has no healthy target: WebSocket-only targets fail an HTTP health "
        "check; point the health check at a path that answers 200."
    ),
    ("gateway_upstream_unreachable", WSGATE): (
        "wsgate could not reach a backend of the pool: see the X-Wsgate-Cause in the "
        "evidence and wsgate's log line for that request."
    ),
    ("proxy_internal_error", NGINX): (
        "nginx logs '[alert] ... worker_connections are not enough while connecting to "
        "upstream' when it runs out of connections: each WebSocket holds two (client and "
        "upstream), so raise worker_connections (and worker_rlimit_nofile) to twice the "
        "WebSockets you expect, plus headroom."
    ),
    ("gateway_timeout", NGINX): (
        "Make the backend answer the handshake sooner, or raise proxy_read_timeout (and "
        "proxy_connect_timeout when the connect is what hangs) in the location."
    ),
    ("gateway_timeout", HAPROXY): (
        "Make the backend answer sooner, or raise 'timeout server' (and 'timeout connect') "
        "in the backend or defaults section."
    ),
    ("gateway_timeout", APACHE): (
        "Apache answers 502 'Proxy Error' for a backend that does not answer within "
        "Timeout/ProxyTimeout: make the backend answer sooner or raise ProxyTimeout (or "
        "timeout= on ProxyPass)."
    ),
    ("gateway_timeout", ENVOY): (
        "Raise the route's timeout (0s disables it for upgrades) or make the backend answer sooner."
    ),
    ("gateway_timeout", CLOUDFLARE): (
        "Cloudflare waits 100 s for the origin (524) and 15 s for its TCP connect (522): "
        "make the origin answer sooner."
    ),
    ("gateway_timeout", AWS_ELB): (
        "Make the target answer sooner or raise the load balancer's idle_timeout."
    ),
    ("idle_cut", NGINX): (
        "Send a ping more often than the cut, or raise proxy_read_timeout and "
        "proxy_send_timeout in the WebSocket location (for example 1h)."
    ),
    ("idle_cut", HAPROXY): (
        "Set 'timeout tunnel 1h' (it replaces timeout client/server once the WebSocket is "
        "open), or ping more often than the cut."
    ),
    ("idle_cut", APACHE): (
        "Raise ProxyTimeout (or timeout= on the ProxyPass) or ping more often than the cut."
    ),
    ("idle_cut", ENVOY): (
        "Raise stream_idle_timeout (and the route's idle_timeout), or ping more often."
    ),
    ("idle_cut", CLOUDFLARE): (
        "Cloudflare cuts idle WebSockets after 100 s and this cannot be raised: ping at "
        "least every 60 s."
    ),
    ("idle_cut", AWS_ELB): (
        "Raise the load balancer's idle_timeout.timeout_seconds (up to 4000 s) or ping more "
        "often than the cut."
    ),
    ("idle_cut", WSGATE): (
        "Raise pools.NAME.tunnel_idle_timeout_s (0 turns it off) or ping more often than "
        "the cut; wsgate closes an idle tunnel with 1001 'idle timeout'."
    ),
    ("server_going_away", WSGATE): (
        "wsgate closes with these words when it stops or restarts (SIGTERM drains it and "
        "closes the WebSockets still open with 'server shutting down'; the server.drain_* "
        "keys say when and how fast) and when a backend is drained through the admin API "
        "(1012 'backend drained'): clients reconnect with a jittered delay; raise "
        "server.drain_timeout_s to give open WebSockets longer to finish."
    ),
    ("path_not_found", NGINX): (
        "No nginx location (or the wrong server block) matches this path: check the "
        "location prefix and server_name, and whether proxy_pass with a URI part rewrites it."
    ),
    ("path_not_found", TRAEFIK): (
        "'404 page not found' is Traefik's answer when no router rule matches: check the "
        "router's Host and PathPrefix rules."
    ),
    ("path_not_found", WSGATE): (
        "No wsgate route matches: add a [[routes]] entry for this host and path prefix."
    ),
    ("burst_overload", NGINX): (
        "Raise worker_connections (each WebSocket holds two) and worker_processes, and check "
        "that the backend can take simultaneous handshakes (its backlog and workers)."
    ),
    ("burst_overload", HAPROXY): (
        "Check maxconn (global, frontend and per server) and the queue: 'timeout queue' "
        "turns waiting handshakes into 503s."
    ),
}


def fix_for(code: str, product: str | None) -> str | None:
    """The fix for `code` specific to `product`, or None."""
    if product is None:
        return None
    return _FIXES.get((code, product))
