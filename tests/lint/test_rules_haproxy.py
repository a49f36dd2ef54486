"""HAProxy rules, fed with text: defaults inheritance, time units, which backends carry
WebSockets, and each check at its boundary."""

from __future__ import annotations

import pytest

from tests.lint.helpers import codes, lint_text

BASE = """\
defaults
    mode http
    timeout connect 5s
    timeout client {client}
    timeout server {server}
{defaults_extra}
frontend fe
    bind :80
    acl is_ws hdr(Upgrade) -i websocket
    use_backend app_ws if is_ws
    default_backend app_http

backend app_ws
    balance leastconn
{backend_extra}
    server s1 127.0.0.1:9000

backend app_http
    server s2 127.0.0.1:9001
"""


def cfg(
    client: str = "30s", server: str = "30s", defaults_extra: str = "", backend_extra: str = ""
) -> str:
    return BASE.format(
        client=client, server=server, defaults_extra=defaults_extra, backend_extra=backend_extra
    )


def test_tunnel_timeout_in_defaults_is_clean() -> None:
    assert lint_text("haproxy", cfg(defaults_extra="    timeout tunnel 1h")) == []


@pytest.mark.parametrize(
    ("client", "server", "said"),
    [
        ("30s", "30s", "30 s"),
        ("50000", "50000", "50 s"),
        ("1m", "20s", "20 s"),
        ("5s", "1h", "5 s"),
    ],
)
def test_missing_tunnel_timeout_names_the_shorter_cut(client: str, server: str, said: str) -> None:
    found = lint_text("haproxy", cfg(client=client, server=server))
    assert codes(found) == [
        (13, "haproxy_no_timeout_tunnel", "warning"),
        (18, "haproxy_no_timeout_tunnel", "info"),
    ]
    assert f"after {said}" in found[0].message


def test_tunnel_timeout_in_the_backend_only_covers_that_backend() -> None:
    found = lint_text("haproxy", cfg(backend_extra="    timeout tunnel 1h"))
    assert codes(found) == [(18, "haproxy_no_timeout_tunnel", "info")]


def test_listen_section_is_frontend_and_backend() -> None:
    text = """\
listen websocket_edge
    mode http
    bind :80
    timeout connect 5s
    timeout client 25s
    timeout server 25s
    server s1 127.0.0.1:9000
"""
    assert codes(lint_text("haproxy", text)) == [
        (1, "haproxy_balance_roundrobin", "info"),
        (1, "haproxy_no_timeout_tunnel", "warning"),
    ]


def test_default_mode_is_tcp_so_http_frontend_to_unset_backend_mismatches() -> None:
    text = """\
frontend fe
    mode http
    timeout client 30s
    default_backend realtime
backend realtime
    timeout connect 5s
    timeout server 30s
    timeout tunnel 1h
    balance leastconn
    server s 127.0.0.1:1
"""
    assert codes(lint_text("haproxy", text)) == [(4, "haproxy_mode_mismatch", "error")]


def test_httpchk_with_upgrade_expectation_is_clean_and_plain_backend_is_not_checked() -> None:
    good = cfg(
        defaults_extra="    timeout tunnel 1h",
        backend_extra="    option httpchk\n    http-check expect status 101",
    )
    assert lint_text("haproxy", good) == []
    plain = cfg(defaults_extra="    timeout tunnel 1h").replace(
        "backend app_http\n", "backend app_http\n    option httpchk GET /health\n"
    )
    assert lint_text("haproxy", plain) == []


def test_httpchk_to_another_port_is_not_a_websocket_check() -> None:
    # The check goes to a health endpoint (`check port`), as in examples/haproxy.cfg.
    text = cfg(
        defaults_extra="    timeout tunnel 1h", backend_extra="    option httpchk GET /readyz"
    ).replace("server s1 127.0.0.1:9000", "server s1 127.0.0.1:9000 check port 9180")
    assert lint_text("haproxy", text) == []
    one_on_the_service = text.replace(
        "backend app_ws\n", "backend app_ws\n    server s0 127.0.0.1:9002 check\n"
    )
    assert [c[1] for c in codes(lint_text("haproxy", one_on_the_service))] == [
        "haproxy_httpchk_no_upgrade"
    ]


def test_httpchk_in_defaults_is_inherited_by_the_websocket_backend() -> None:
    text = cfg(defaults_extra="    timeout tunnel 1h\n    option httpchk GET /")
    assert codes(lint_text("haproxy", text)) == [(7, "haproxy_httpchk_no_upgrade", "warning")]


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("http-request del-header Upgrade", True),
        ("http-request set-header Connection close", True),
        ("http-request set-header Connection upgrade", False),
        ("http-request del-header Connection unless { hdr(upgrade) -i websocket }", False),
        ("http-request del-header X-Upgrade-Insecure", False),
        ("option http-server-close", False),
        ("option httpclose", False),
    ],
)
def test_header_rules_that_remove_upgrade(line: str, found: bool) -> None:
    text = cfg(defaults_extra="    timeout tunnel 1h", backend_extra=f"    {line}")
    got = [f for f in lint_text("haproxy", text) if f.code == "haproxy_upgrade_header_removed"]
    assert bool(got) is found


def test_queue_timeout_set_or_missing() -> None:
    limited = cfg(defaults_extra="    timeout tunnel 1h").replace(
        "server s1 127.0.0.1:9000", "server s1 127.0.0.1:9000 maxconn 100"
    )
    (found,) = lint_text("haproxy", limited)
    assert found.code == "haproxy_queue_timeout" and "wait 5 s" in found.message
    queued = limited.replace("timeout tunnel 1h", "timeout tunnel 1h\n    timeout queue 10s")
    assert lint_text("haproxy", queued) == []


def test_default_server_maxconn_in_defaults_counts() -> None:
    text = cfg(defaults_extra="    timeout tunnel 1h\n    default-server maxconn 50")
    assert [f.code for f in lint_text("haproxy", text)] == [
        "haproxy_queue_timeout",
        "haproxy_queue_timeout",
    ]


def test_ws_path_option_marks_a_backend() -> None:
    text = """\
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind :80
    use_backend streams if { path_beg /stream }
backend streams
    balance leastconn
    server s 127.0.0.1:1
"""
    # Without --ws-path lint cannot tell, and says so.
    assert codes(lint_text("haproxy", text)) == [
        (9, "haproxy_no_timeout_tunnel", "info"),
        (9, "lint_no_ws_location", "info"),
    ]
    assert codes(lint_text("haproxy", text, ws_paths=("/stream",))) == [
        (9, "haproxy_no_timeout_tunnel", "warning")
    ]
