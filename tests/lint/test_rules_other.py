"""Apache, Caddy and wsgate TOML rules, fed with text."""

from __future__ import annotations

import pytest

from tests.lint.helpers import codes, lint_text
from wsgate.lint.model import LintError

MAIN = """\
LoadModule proxy_module modules/mod_proxy.so
LoadModule proxy_http_module modules/mod_proxy_http.so
{modules}
Timeout {timeout}
<VirtualHost *:80>
    {proxy}
</VirtualHost>
"""


@pytest.mark.parametrize(
    ("modules", "timeout", "proxy", "want"),
    [
        ("", "300", "ProxyPass /ws/ http://a/ws/ upgrade=websocket", []),
        ("", "60", "ProxyPass /ws/ http://a/ws/ upgrade=websocket", [(4, "apache_timeout_short")]),
        ("", "61", "ProxyPass /ws/ http://a/ws/ upgrade=websocket", []),
        ("", "60", "ProxyPass /ws/ http://a/ws/ upgrade=websocket timeout=3600", []),
        ("", "300", "ProxyPass /ws/ http://a/ws/", [(6, "apache_no_upgrade")]),
        ("", "300", "ProxyPass /ws/ ws://a/ws/", [(6, "apache_wstunnel_missing")]),
        (
            "LoadModule proxy_wstunnel_module modules/mod_proxy_wstunnel.so",
            "300",
            "ProxyPass /ws/ ws://a/ws/",
            [],
        ),
    ],
)
def test_apache_checks(modules: str, timeout: str, proxy: str, want: list[tuple[int, str]]) -> None:
    text = MAIN.format(modules=modules, timeout=timeout, proxy=proxy)
    assert [(f.line, f.code) for f in lint_text("apache", text)] == want


def test_apache_ws_rule_before_http_rule_for_the_same_path() -> None:
    text = MAIN.format(
        modules="LoadModule proxy_wstunnel_module x.so",
        timeout="300",
        proxy="ProxyPass /ws/ ws://a/ws/\n    ProxyPass /ws/ http://a/ws/",
    )
    assert lint_text("apache", text) == []


def test_apache_default_timeout_only_when_the_main_config_is_seen() -> None:
    vhost = "<VirtualHost *:80>\n  ProxyPass /ws/ http://a/ upgrade=websocket\n</VirtualHost>\n"
    assert lint_text("apache", vhost) == []
    with_root = 'ServerRoot "/etc/httpd"\n' + vhost
    (found,) = lint_text("apache", with_root)
    assert found.code == "apache_timeout_short" and "default Timeout" in found.message


CLOSE = "stream_close_delay 5m\n"
CADDY = """\
example.test {{
    reverse_proxy {target} 127.0.0.1:9000 {{
        {inner}
    }}
}}
"""


@pytest.mark.parametrize(
    ("target", "inner", "want"),
    [
        ("/ws/*", "stream_close_delay 5m", []),
        ("/ws/*", "", [(2, "caddy_no_stream_close_delay", "warning")]),
        ("/api/*", "", [(2, "caddy_no_stream_close_delay", "info")]),
        ("/ws/*", CLOSE + "stream_timeout 59m", [(4, "caddy_stream_timeout", "warning")]),
        ("/ws/*", CLOSE + "stream_timeout 1h", []),
        ("/ws/*", CLOSE + "header_up -Upgrade", [(4, "caddy_upgrade_header_removed", "error")]),
        ("/ws/*", CLOSE + "header_up X-Real-IP {remote_host}", []),
        ("/ws/*", CLOSE + "header_up Connection Upgrade", []),
    ],
)  # fmt: skip
def test_caddy_checks(target: str, inner: str, want: list[tuple[int, str, str]]) -> None:
    assert codes(lint_text("caddy", CADDY.format(target=target, inner=inner))) == want


def test_caddy_upgrade_matcher_and_ws_path_mark_websocket_proxies() -> None:
    matcher = """\
a.test {
    @upgrades {
        header Connection *Upgrade*
    }
    reverse_proxy @upgrades 127.0.0.1:1
}
"""
    assert codes(lint_text("caddy", matcher)) == [(5, "caddy_no_stream_close_delay", "warning")]
    plain = CADDY.format(target="/events/*", inner="")
    assert codes(lint_text("caddy", plain, ws_paths=("/events",)))[0][2] == "warning"


TOML = """\
[pools.p]
backends = ["127.0.0.1:1"]
balance = "least_conn"
{extra}

[[routes]]
pool = "p"
"""


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ("", []),
        ("connect_timeout_s = 1", []),
        ("connect_timeout_s = 0.999", [(4, "wsgate_short_timeout")]),
        ("response_timeout_s = 0.5", [(4, "wsgate_short_timeout")]),
        ("tunnel_idle_timeout_s = 0", []),
        ("tunnel_idle_timeout_s = 59", [(4, "wsgate_tunnel_idle_short")]),
        ("tunnel_idle_timeout_s = 60", []),
        # What the gateway's own loader refuses is reported with its words.
        ("queue_size_unknown_key = 3", [(4, "wsgate_config_invalid")]),
        ('connect_timeout_s = "fast"', [(4, "wsgate_config_invalid")]),
        ("queue_size = 0", [(4, "wsgate_no_queue")]),
        ("queue_size = 1", []),
    ],
)
def test_wsgate_checks(extra: str, want: list[tuple[int, str]]) -> None:
    assert [(f.line, f.code) for f in lint_text("wsgate", TOML.format(extra=extra))] == want


def test_wsgate_invalid_toml_is_lint_error_with_line() -> None:
    with pytest.raises(LintError) as err:
        lint_text("wsgate", '[pools.p]\nbackends = ["a"\nqueue_size = 1\n')
    assert err.value.line >= 2


def test_wsgate_odd_shapes_are_tolerated() -> None:
    # The rules skip shapes they cannot read; the loader's verdict is the one finding.
    found = lint_text("wsgate", "pools = 3\nroutes = 'x'\n[server]\nlisten = []\n")
    assert [(f.code, f.message) for f in found] == [
        (
            "wsgate_config_invalid",
            'server.listen: expected a non-empty list of "host:port" strings, got []',
        )
    ]


def test_apache_ws_url_needs_a_module_that_handles_it() -> None:
    ws = MAIN.format(modules="", timeout="300", proxy="ProxyPass /ws/ ws://a/ws/")
    assert codes(lint_text("apache", ws)) == [(6, "apache_wstunnel_missing", "info")]
    no_http = ws.replace("LoadModule proxy_http_module modules/mod_proxy_http.so\n", "")
    assert codes(lint_text("apache", no_http)) == [(5, "apache_wstunnel_missing", "error")]


@pytest.mark.parametrize(
    ("first", "second", "want"),
    [
        # The later line's URL starts with the earlier one's: one worker, first parameters.
        ("/app/ http://b:1/", "/app/ws/ http://b:1/ws/ upgrade=websocket", "error"),
        ("/app/ http://b:1/", "/app/ws/ http://b:1/ws/ timeout=3600", "warning"),
        # Other order, other host or same parameters: separate or identical workers.
        ("/app/ws/ http://b:1/ws/ upgrade=websocket", "/app/ http://b:1/", None),
        ("/app/ http://c:1/", "/app/ws/ http://b:1/ws/ upgrade=websocket", None),
        ("/a/ http://b:1/ upgrade=websocket", "/ws/ http://b:1/ws/ upgrade=websocket", None),
    ],
)
def test_apache_shared_worker(first: str, second: str, want: str | None) -> None:
    text = MAIN.format(
        modules="", timeout="300", proxy=f"ProxyPass {first}\n    ProxyPass {second}"
    )
    got = [f.severity.value for f in lint_text("apache", text) if f.code == "apache_shared_worker"]
    assert got == ([want] if want else [])


def test_wsgate_single_pool_without_routes_gets_everything() -> None:
    one = '[pools.only]\nbackends = ["127.0.0.1:1"]\n'
    assert lint_text("wsgate", one) == []
    two = one + '[pools.other]\nbackends = ["127.0.0.1:2"]\n'
    assert [f.code for f in lint_text("wsgate", two)] == [
        "wsgate_config_invalid",  # two pools need [[routes]]
        "wsgate_pool_unrouted",
        "wsgate_pool_unrouted",
    ]


def test_apache_says_when_it_recognised_no_websocket_location() -> None:
    from tests.lint.helpers import lint_text

    text = "<VirtualHost *:80>\n    ProxyPass /app/ http://127.0.0.1:1/app/\n</VirtualHost>\n"
    found = {f.code: f for f in lint_text("apache", text)}
    assert found["lint_no_ws_location"].severity.value == "info"
    assert "`wsgate lint --ws-path /app/ FILE`" in found["lint_no_ws_location"].fix
    assert "lint_no_ws_location" not in {
        f.code for f in lint_text("apache", text, ws_paths=("/app/",))
    }


def test_apache_timeout_fix_names_a_line_that_takes_it() -> None:
    from tests.lint.helpers import lint_text

    rewrite = """\
LoadModule proxy_module modules/mod_proxy.so
LoadModule proxy_wstunnel_module modules/mod_proxy_wstunnel.so
<VirtualHost *:80>
    RewriteEngine on
    RewriteCond %{HTTP:Upgrade} websocket [NC]
    RewriteRule ^/ws/(.*) ws://127.0.0.1:1/$1 [P]
</VirtualHost>
"""
    (found,) = [f for f in lint_text("apache", rewrite) if f.code == "apache_timeout_short"]
    assert found.fix == (
        "Set `ProxyTimeout 3600` in <VirtualHost *:80> (a RewriteRule [P] takes no `timeout=`)."
    )
    shared = """\
LoadModule proxy_module modules/mod_proxy.so
LoadModule proxy_http_module modules/mod_proxy_http.so
ProxyPass /shop/ http://127.0.0.1:1/
ProxyPass /shop/ws/ http://127.0.0.1:1/ws/ upgrade=websocket timeout=30
"""
    timeouts = [f for f in lint_text("apache", shared) if f.code == "apache_timeout_short"]
    assert [f.fix for f in timeouts] == [
        "Append `timeout=3600` to `ProxyPass /shop/ http://127.0.0.1:1/` (line 3, whose worker "
        "this path shares), or set `ProxyTimeout 3600` in the server config."
    ]
