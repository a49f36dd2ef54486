"""Kind detection from names and content, and durations and WebSocket name hints."""

from __future__ import annotations

import pytest

from wsgate.lint.loader import detect_kind
from wsgate.lint.model import looks_ws, matches_ws_path, parse_duration


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("/etc/nginx/nginx.conf", "", "nginx"),
        ("/etc/haproxy/haproxy.cfg", "", "haproxy"),
        ("/etc/apache2/apache2.conf", "", "apache"),
        ("/etc/httpd/conf/httpd.conf", "", "apache"),
        ("/etc/caddy/Caddyfile", "", "caddy"),
        ("wsgate.toml", "", "wsgate"),
        ("site.conf", "server {\n  listen 80;\n}\n", "nginx"),
        ("site.conf", "http {\n  include conf.d/*.conf;\n}\n", "nginx"),
        ("site.conf", "<VirtualHost *:80>\n</VirtualHost>\n", "apache"),
        ("lb.cfg", "defaults\n  mode http\nfrontend f\n  acl a { path /x }\n", "haproxy"),
        ("site", "example.test {\n  reverse_proxy 127.0.0.1:1\n}\n", "caddy"),
        ("gw.conf", "[pools.a]\nbackends = []\n", "wsgate"),
        ("notes.txt", "hello\n", None),
    ],
)
def test_detect_kind(name: str, text: str, kind: str | None) -> None:
    assert detect_kind(name, text) == kind


@pytest.mark.parametrize(
    ("text", "unit", "seconds"),
    [
        ("60s", "s", 60.0),
        ("60", "s", 60.0),
        ("50000", "ms", 50.0),
        ("1h30m", "s", 5400.0),
        ("500ms", "s", 0.5),
        ("2d", "s", 172800.0),
        ('"10s"', "s", 10.0),
        ("fast", "s", None),
        ("", "s", None),
        ("10x", "s", None),
    ],
)
def test_parse_duration(text: str, unit: str, seconds: float | None) -> None:
    assert parse_duration(text, bare_unit=unit) == seconds


@pytest.mark.parametrize(
    ("text", "ws"),
    [
        ("/ws", True),
        ("/ws/chat", True),
        ("/socket.io/", True),
        ("/websocket", True),
        ("/cable", True),
        ("/hubs/chat", True),
        ("realtime_backend", True),
        ("/news", False),
        ("/api/v1", False),
        ("/wsdl", False),
        ("/static", False),
    ],
)
def test_websocket_name_hints(text: str, ws: bool) -> None:
    assert looks_ws(text) is ws


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/ws/", True),
        ("/ws", True),
        ("/ws/chat", True),
        ("= /ws/", True),
        ("~ ^/ws/", True),
        ("/", False),
        ("/api/", False),
        ("/w", True),  # a shorter prefix still receives /ws/ requests
    ],
)
def test_ws_path_prefixes(path: str, matches: bool) -> None:
    assert matches_ws_path(path, ("/ws/",)) is matches
