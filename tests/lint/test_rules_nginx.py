"""nginx rules, fed with text: which locations count as WebSocket ones, inheritance,
timeouts at N and N+1, and no findings for harmless settings."""

from __future__ import annotations

import pytest

from tests.lint.helpers import codes, lint_text

GOOD_WS = """\
map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
server {{
    location {path} {{
        proxy_pass http://127.0.0.1:8000;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        {extra}
    }}
}}
"""


def test_correct_websocket_location_gives_nothing() -> None:
    text = GOOD_WS.format(path="/ws/", extra="proxy_read_timeout 1h;")
    assert lint_text("nginx", text) == []


@pytest.mark.parametrize(
    "extra",
    [
        "proxy_buffering off;",
        "proxy_buffering on;",
        "proxy_request_buffering off;",
        "proxy_cache off;",
        "gzip on;",
        "proxy_set_header Host $host;",
    ],
)
def test_harmless_settings_are_not_findings(extra: str) -> None:
    text = GOOD_WS.format(path="/ws/", extra=f"proxy_read_timeout 1h; {extra}")
    assert lint_text("nginx", text) == []


@pytest.mark.parametrize(("timeout", "found"), [("60s", True), ("61s", False), ("1m", True)])
def test_read_timeout_at_60_and_61_seconds(timeout: str, found: bool) -> None:
    text = GOOD_WS.format(path="/ws/", extra=f"proxy_read_timeout {timeout};")
    assert bool(lint_text("nginx", text)) is found


def test_read_timeout_default_is_60_and_a_ping_note_silences_it() -> None:
    assert codes(lint_text("nginx", GOOD_WS.format(path="/ws/", extra=""))) == [
        (3, "nginx_read_timeout", "warning")
    ]
    noted = GOOD_WS.format(path="/ws/", extra="# socket.io pings every 25 s")
    assert lint_text("nginx", noted) == []


PLAIN = "server {{ location {path} {{ proxy_pass http://{host}:8000; }} }}"


@pytest.mark.parametrize(
    ("path", "host", "ws"),
    [
        ("/ws/", "127.0.0.1", True),
        ("/socket.io/", "127.0.0.1", True),
        ("/cable", "127.0.0.1", True),
        ("/chatHub", "127.0.0.1", False),  # one word: not split on case
        ("/hub/", "127.0.0.1", True),
        ("/api/realtime", "127.0.0.1", True),
        ("/api/", "ws_backend", True),
        ("/api/", "app", False),
        ("/news/", "app", False),  # "ws" inside a word is not a WebSocket hint
    ],
)
def test_which_locations_serve_websockets(path: str, host: str, ws: bool) -> None:
    levels = {f.severity.value for f in lint_text("nginx", PLAIN.format(path=path, host=host))}
    assert ("error" in levels) is ws
    assert (levels == {"info"}) is not ws


def test_ws_path_option_makes_a_location_a_websocket_one() -> None:
    text = PLAIN.format(path="/stream/", host="app")
    assert {f.severity.value for f in lint_text("nginx", text)} == {"info"}
    found = lint_text("nginx", text, ws_paths=("/stream",))
    assert {f.code for f in found if f.severity.value == "error"} == {
        "nginx_http_version",
        "nginx_upgrade_not_forwarded",
        "nginx_connection_not_upgrade",
    }


def test_http_level_settings_are_inherited() -> None:
    text = """\
http {
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    proxy_http_version 1.1;
    proxy_read_timeout 2h;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    server { location /ws/ { proxy_pass http://a; } }
}
"""
    assert lint_text("nginx", text) == []


def test_location_header_drops_http_level_headers_two_levels_up() -> None:
    text = """\
http {
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection "upgrade";
    server {
        location /ws/ {
            proxy_set_header X-Real-IP $remote_addr;
            proxy_pass http://a;
            proxy_read_timeout 1h;
        }
    }
}
"""
    (found,) = lint_text("nginx", text)
    assert (found.line, found.code) == (7, "nginx_header_inheritance")
    assert "`proxy_set_header Upgrade $http_upgrade;`" in found.fix
    # Repeating the hard-coded Connection would trade this error for a
    # nginx_connection_hardcoded warning: the fix repeats it as the map variable.
    assert "`proxy_set_header Connection $connection_upgrade;`" in found.fix
    assert "add `map $http_upgrade $connection_upgrade { default upgrade; '' close; }`" in (
        found.fix
    )


def test_proxy_pass_inside_if_counts() -> None:
    text = "server { location /ws/ { if ($arg_x) { proxy_pass http://a; } } }"
    assert "nginx_http_version" in {f.code for f in lint_text("nginx", text)}


def test_upgrade_header_with_fixed_value_other_than_websocket() -> None:
    text = GOOD_WS.format(path="/ws/", extra="proxy_read_timeout 1h;").replace(
        "Upgrade $http_upgrade", "Upgrade h2c"
    )
    (found,) = lint_text("nginx", text)
    assert found.code == "nginx_upgrade_not_forwarded" and found.line == 6
    assert found.fix.startswith("Set ")


WORKERS = """\
worker_processes {workers};
events {{ worker_connections {wc}; }}
http {{ server {{ location /ws/ {{ proxy_pass http://a; proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
    proxy_read_timeout 1h; }} }} }}
"""


@pytest.mark.parametrize(
    ("workers", "wc", "capacity", "found"),
    [
        ("1", 2001, 1000, False),  # one connection goes to the listening socket
        ("1", 2000, 1000, True),
        ("1", 2001, 1001, True),
        ("4", 513, 1024, False),
        ("4", 513, 1025, True),
        ("auto", 2001, 1000, False),
        ("auto", 2001, 1001, True),  # auto counts as one worker
    ],
)
def test_worker_connections_against_capacity(
    workers: str, wc: int, capacity: int, found: bool
) -> None:
    text = WORKERS.format(workers=workers, wc=wc)
    got = [f for f in lint_text("nginx", text, capacity=capacity) if "worker" in f.code]
    assert bool(got) is found
    if got:
        assert got[0].line == 2


def test_worker_connections_default_512_when_events_is_empty() -> None:
    text = WORKERS.format(workers=1, wc=512).replace("worker_connections 512;", "")
    (found,) = [f for f in lint_text("nginx", text) if "worker" in f.code]
    assert "default worker_connections (512)" in found.message
    assert "at most 255 proxied" in found.message


def test_no_worker_check_without_websocket_locations_or_events() -> None:
    plain = "events { worker_connections 64; } http { server { listen 80; } }"
    assert lint_text("nginx", plain) == []


def test_location_opting_out_of_server_upgrade_headers_is_only_info() -> None:
    text = """\
server {
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection "upgrade";
    location /api/ {
        proxy_pass http://app;
        proxy_set_header Connection "";
    }
}
"""
    assert codes(lint_text("nginx", text)) == [
        (5, "lint_no_ws_location", "info"),
        (7, "nginx_header_inheritance", "info"),
    ]


def test_inheritance_names_only_the_level_that_would_have_been_inherited() -> None:
    text = """\
http {
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection "upgrade";
    server {
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        location /ws/ {
            proxy_set_header X-Real-IP $remote_addr;
            proxy_pass http://a;
            proxy_read_timeout 1h;
        }
    }
}
"""
    (found,) = lint_text("nginx", text)
    assert found.code == "nginx_header_inheritance"
    assert "drops the Upgrade and Connection headers set at test.nginx:6" in found.message


CHAT = """\
server {
    listen 8080;
    location /chat {
        proxy_pass http://127.0.0.1:9000;
        proxy_http_version 1.1;
        # pings every 20 s
    }
}
"""


def test_a_location_prepared_for_websockets_is_at_least_a_warning() -> None:
    # The README's demo path: HTTP/1.1 to the backend but no upgrade forwarded. It once
    # gave only infos and "0 errors".
    found = lint_text("nginx", CHAT)
    assert codes(found) == [
        (3, "nginx_connection_not_upgrade", "warning"),
        (3, "nginx_upgrade_not_forwarded", "warning"),
    ]
    assert all(
        "location /chat looks prepared for WebSockets: `proxy_http_version 1.1` in it, a path "
        "named like a socket service; `--ws-path /chat` says it serves them" in f.message
        for f in found
    )
    # Named, it is a WebSocket location: errors.
    assert {f.severity.value for f in lint_text("nginx", CHAT, ws_paths=("/chat",))} == {"error"}


@pytest.mark.parametrize(
    ("path", "extra", "reason"),
    [
        ("/feed", "proxy_http_version 1.1;", "`proxy_http_version 1.1` in it"),
        ("/feed", "proxy_read_timeout 1h;", "a long `proxy_read_timeout 1h;`"),
        ("/chat", "", "a path named like a socket service"),
        ("/notifications/", "", "a path named like a socket service"),
    ],
)
def test_what_makes_a_location_look_prepared(path: str, extra: str, reason: str) -> None:
    text = f"server {{ location {path} {{ proxy_pass http://127.0.0.1:1; {extra} }} }}"
    found = [f for f in lint_text("nginx", text) if f.code == "nginx_upgrade_not_forwarded"]
    assert [f.severity.value for f in found] == ["warning"]
    assert reason in found[0].message


def test_an_upstream_named_like_a_socket_service_looks_prepared() -> None:
    text = "server { location /api/ { proxy_pass http://chat_backend; } }"
    (found,) = [f for f in lint_text("nginx", text) if f.code == "nginx_upgrade_not_forwarded"]
    assert found.severity.value == "warning"
    assert "an upstream named like a socket service" in found.message


def test_upgrade_headers_a_location_hides_make_it_look_prepared() -> None:
    text = """\
server {
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    location /feed {
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://127.0.0.1:1;
    }
}
"""
    (found,) = lint_text("nginx", text)
    assert (found.code, found.severity.value) == ("nginx_header_inheritance", "warning")
    assert "upgrade headers in the server block" in found.message


@pytest.mark.parametrize(
    "extra",
    [
        'proxy_http_version 1.1; proxy_set_header Connection "";',  # keepalive to the backend
        "proxy_read_timeout 60s;",  # the default, said out loud
        "",
    ],
)
def test_plain_locations_stay_info(extra: str) -> None:
    text = f"server {{ location /api/ {{ proxy_pass http://127.0.0.1:1; {extra} }} }}"
    assert {f.severity.value for f in lint_text("nginx", text)} == {"info"}


def test_lint_says_when_it_recognised_no_websocket_location() -> None:
    text = "server { location / { proxy_pass http://127.0.0.1:1; } }"
    (said,) = [f for f in lint_text("nginx", text) if f.code == "lint_no_ws_location"]
    assert said.severity.value == "info"
    assert said.message.startswith("no WebSocket location recognised among the 1 proxied")
    assert "`wsgate lint --ws-path / FILE`" in said.fix
    # A --ws-path that names no location is said too.
    unmatched = [
        f.message
        for f in lint_text("nginx", text.replace("/ {", "/api/ {"), ws_paths=("/chat",))
        if f.code == "lint_no_ws_location"
    ]
    assert "--ws-path /chat matches none of the proxied locations (/api/)" in unmatched
    # Nothing to say without a proxied location, or with a WebSocket one.
    assert lint_text("nginx", "server { location / { root /srv; } }") == []
    assert "lint_no_ws_location" not in {f.code for f in lint_text("nginx", CHAT)}


def test_a_header_fix_repeats_what_the_location_inherits() -> None:
    text = """\
map $http_upgrade $connection_upgrade { default upgrade; '' close; }
server {
    proxy_http_version 1.1;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header Connection $connection_upgrade;
    location /ws/ {
        proxy_pass http://127.0.0.1:1;
        proxy_read_timeout 1h;
    }
}
"""
    (found,) = lint_text("nginx", text)
    assert found.code == "nginx_upgrade_not_forwarded"
    assert found.fix == (
        "Add `proxy_set_header Upgrade $http_upgrade;` to location /ws/, and repeat there what "
        "it inherits from the server block (a level with its own proxy_set_header inherits "
        "none): `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;` "
        "`proxy_set_header Connection $connection_upgrade;`."
    )


def test_a_connection_fix_uses_the_map_there_is_and_fits_it_to_keepalive() -> None:
    text = """\
map $http_upgrade $conn { default upgrade; '' close; }
upstream pool { server 127.0.0.1:1; keepalive 8; }
server {
    location /ws/ {
        proxy_pass http://pool;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "";
        proxy_read_timeout 1h;
    }
}
"""
    (found,) = lint_text("nginx", text)
    assert found.code == "nginx_connection_not_upgrade"
    assert found.fix == (
        "Set `proxy_set_header Connection $conn;` in location /ws/; map the empty Upgrade to "
        "an empty Connection: `map $http_upgrade $conn { default upgrade; '' ''; }`."
    )
