"""Rules never crash: configs stitched from the words the rules look at either fail to
parse with LintError or lint to findings with a line, whatever their shape."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lint.helpers import lint_text
from wsgate.lint.model import LintError

WORDS = {
    "nginx": [
        "http",
        "server",
        "location",
        "/ws/",
        "/",
        "if",
        "($x)",
        "{",
        "}",
        ";",
        "\n",
        "proxy_pass",
        "http://a",
        "http://up",
        "proxy_http_version",
        "1.1",
        "1.0",
        "proxy_set_header",
        "Upgrade",
        "Connection",
        '""',
        "upgrade",
        "$http_upgrade",
        "$connection_upgrade",
        "map",
        "default",
        "''",
        "close",
        "upstream",
        "up",
        "keepalive",
        "4",
        "events",
        "worker_connections",
        "worker_processes",
        "auto",
        "proxy_read_timeout",
        "30s",
        "listen",
        "80",
        "# pings",
    ],
    "haproxy": [
        "\ndefaults",
        "\nfrontend f",
        "\nbackend b",
        "\nlisten l",
        "\nbackend ws",
        "\n   ",
        "mode",
        "http",
        "tcp",
        "timeout",
        "tunnel",
        "client",
        "server",
        "connect",
        "queue",
        "5s",
        "50000",
        "use_backend",
        "default_backend",
        "b",
        "ws",
        "if",
        "unless",
        "acl",
        "is_ws",
        "hdr(Upgrade)",
        "-i",
        "websocket",
        "option",
        "httpchk",
        "GET",
        "/",
        "http-check",
        "expect",
        "status",
        "101",
        "http-request",
        "del-header",
        "set-header",
        "Connection",
        "s1",
        "127.0.0.1:1",
        "maxconn",
        "10",
        "default-server",
        "balance",
        "roundrobin",
        "from",
        "{",
        "}",
    ],
    "apache": [
        "\n",
        "<VirtualHost *:80>",
        "</VirtualHost>",
        "<Location /ws/>",
        "</Location>",
        "ProxyPass",
        "ProxyPassMatch",
        "/ws/",
        "/",
        "http://a/",
        "ws://a/",
        "http://a/ws/",
        "upgrade=websocket",
        "timeout=5",
        "!",
        "LoadModule",
        "proxy_wstunnel_module",
        "proxy_http_module",
        "x.so",
        "Timeout",
        "ProxyTimeout",
        "30",
        "RewriteRule",
        "RewriteCond",
        "%{HTTP:Upgrade}",
        "[P]",
        "ServerRoot",
        "/srv",
    ],
    "caddy": [
        "\n",
        "a.test",
        "{",
        "}",
        "reverse_proxy",
        "/ws/*",
        "@ws",
        "127.0.0.1:1",
        "handle",
        "header_up",
        "-Connection",
        "-Upgrade",
        "Connection",
        "close",
        "stream_timeout",
        "10m",
        "x",
        "stream_close_delay",
        "5m",
        "header",
        "Upgrade",
        "websocket",
    ],
    "wsgate": [
        "\n",
        "[pools.p]",
        "[pools.q]",
        "[[routes]]",
        "[server]",
        "pool",
        "=",
        '"p"',
        '"x"',
        "queue_size",
        "connect_timeout_s",
        "response_timeout_s",
        "tunnel_idle_timeout_s",
        "0",
        "0.5",
        "30",
        "backends",
        '["a:1"]',
        "true",
    ],
}


def configs(kind: str) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(WORDS[kind]), max_size=60).map(" ".join)


_NGINX_DIRECTIVES = st.sampled_from(
    [
        "proxy_pass http://a;",
        "proxy_pass http://up/x;",
        "proxy_http_version 1.1;",
        "proxy_http_version 1.0;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Upgrade websocket;",
        'proxy_set_header Connection "";',
        "proxy_set_header Connection upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header Connection $http_connection;",
        "proxy_set_header Host $host;",
        "proxy_read_timeout 30s;",
        "proxy_read_timeout 1h;",
        "proxy_read_timeout bogus;",
        "worker_connections 64;",
        "worker_processes auto;",
        "worker_processes 2;",
        "keepalive 8;",
        "listen 80;",
        "# the app pings",
        "map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
        "map $http_upgrade $connection_upgrade { '' ''; }",
        "map $x;",
    ]
)
_NGINX_BLOCKS = ["http", "server", "location /ws/", "location /", "location = /cable",
                 "if ($x)", "upstream up", "events"]  # fmt: skip


def nginx_trees() -> st.SearchStrategy[str]:
    """Nested nginx blocks made of the directives the rules read."""
    return st.recursive(
        _NGINX_DIRECTIVES,
        lambda inner: st.tuples(st.sampled_from(_NGINX_BLOCKS), st.lists(inner, max_size=6)).map(
            lambda b: f"{b[0]} {{\n" + "\n".join(b[1]) + "\n}"
        ),
        max_leaves=25,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(nginx_trees(), max_size=4).map("\n".join), st.integers(1, 5000))
def test_nginx_rules_never_crash_on_nested_configs(text: str, capacity: int) -> None:
    for item in lint_text("nginx", text, capacity=capacity):
        assert item.line >= 1 and item.message and item.fix


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(WORDS)).flatmap(lambda k: st.tuples(st.just(k), configs(k))))
def test_rules_never_crash(case: tuple[str, str]) -> None:
    kind, text = case
    try:
        found = lint_text(kind, text)
    except LintError as err:
        assert err.file == f"test.{kind}"
        return
    for item in found:
        assert item.line >= 1 and item.message and item.fix
