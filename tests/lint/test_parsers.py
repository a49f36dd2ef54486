"""The four small parsers: text in, nodes with file:line out; bad text gives LintError
with the line, never another exception (checked with hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgate.lint import apache, caddy, haproxy, nginx
from wsgate.lint.model import LintError

NGINX = """\
# top comment
http {
    server {
        listen 80;
        location /ws/ {
            proxy_set_header Connection "";  # cleared
            proxy_pass http://app;
        }
    }
}
"""


def test_nginx_tree_keeps_lines_args_and_comments() -> None:
    root = nginx.parse_root(NGINX, "n.conf")
    assert root.comments == ("top comment",)
    location = next(n for n in root.walk() if n.name == "location")
    assert (location.file, location.line, location.args) == ("n.conf", 5, ("/ws/",))
    header = location.first("proxy_set_header")
    assert header is not None
    assert header.args == ("Connection", "") and header.line == 6
    assert location.comments == ("cleared",)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("server {\n  listen 80;\n}\n}\n", 4, 'unexpected "}"'),
        ("server {\n  listen 80;\n", 2, "expecting"),
        ("events {}\nworker_processes 2", 2, 'no ";"'),
        ("server {\n  listen 80\n}\n", 3, 'not terminated by ";"'),
        ("; listen 80;", 1, 'unexpected ";"'),
    ],
)
def test_nginx_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(LintError) as err:
        nginx.parse_root(text, "bad.conf")
    assert (err.value.file, err.value.line) == ("bad.conf", line)
    assert words in err.value.message


def test_haproxy_sections_words_quotes_and_comments() -> None:
    text = (
        "global\n  daemon\n\n# about the frontend\nfrontend fe\n"
        '  http-request set-header X-Note "a # b" # trailing\n'
        "  acl ws hdr(Upgrade) -i websocket\\ x\n"
    )
    root = haproxy.parse_root(text, "h.cfg")
    assert [(s.name, s.args, s.line) for s in root.children()] == [
        ("global", (), 1),
        ("frontend", ("fe",), 5),
    ]
    fe = root.last("frontend")
    assert fe is not None
    first, second = fe.children()
    assert first.args == ("set-header", "X-Note", "a # b") and first.line == 6
    assert second.args == ("ws", "hdr(Upgrade)", "-i", "websocket x")
    # A comment belongs to the section above it, as HAProxy reads lines.
    global_section = root.first("global")
    assert global_section is not None
    assert global_section.comments == ("about the frontend",)
    assert fe.comments == ("trailing",)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("  timeout client 5s\nfrontend fe\n", 1, "outside any section"),
        ("backend b\n  server s '127.0.0.1:80\n", 2, "unmatched quote"),
    ],
)
def test_haproxy_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(LintError) as err:
        haproxy.parse_root(text, "h.cfg")
    assert err.value.line == line and words in err.value.message


def test_apache_sections_continuations_and_case() -> None:
    text = (
        "LoadModule proxy_module modules/mod_proxy.so\n"
        "<VirtualHost *:80>\n"
        "    ProxyPass /ws/ \\\n"
        "        ws://127.0.0.1:8000/ws/\n"
        '    RewriteRule ^/(.*)\\.php$ "ws://x/$1" [P]\n'
        "    <Location /app>\n"
        "        ProxyPass http://127.0.0.1:8001/\n"
        "    </location>\n"
        "</VirtualHost>\n"
    )
    root = apache.parse_root(text, "a.conf")
    vhost = root.first("virtualhost")
    assert vhost is not None and vhost.args == ("*:80",) and vhost.line == 2
    proxy = vhost.first("proxypass")
    assert proxy is not None and proxy.args == ("/ws/", "ws://127.0.0.1:8000/ws/")
    assert proxy.line == 3
    rewrite = vhost.first("RewriteRule")
    assert rewrite is not None and rewrite.args[0] == "^/(.*)\\.php$"
    location = vhost.first("Location")
    assert location is not None and location.line == 6


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("<VirtualHost *:80>\nServerName a\n", 1, "never closed"),
        ("<VirtualHost *:80>\n</Location>\n", 2, "without matching"),
        ("</VirtualHost>\n", 1, "without matching"),
        ('ProxyPass / "http://a\n', 1, "cannot split"),
        ("<VirtualHost *:80\n", 1, "does not end"),
    ],
)
def test_apache_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(LintError) as err:
        apache.parse_root(text, "a.conf")
    assert err.value.line == line and words in err.value.message


def test_caddy_blocks_and_placeholders() -> None:
    text = (
        "{\n  debug\n}\n"
        "example.test {\n"
        "  # the app\n"
        "  reverse_proxy /ws/* 127.0.0.1:9000 {\n"
        "    header_up X-Host {http.request.host}\n"
        '    header_up X-Note "a b"\n'
        "  }\n"
        "}\n"
    )
    root = caddy.parse_root(text, "Caddyfile")
    glob, site = root.children()
    assert glob.name == "{}" and site.name == "example.test" and site.line == 4
    proxy = site.first("reverse_proxy")
    assert proxy is not None and proxy.args == ("/ws/*", "127.0.0.1:9000") and proxy.line == 6
    first, second = proxy.children()
    assert first.args == ("X-Host", "{http.request.host}")
    assert second.args == ("X-Note", "a b")
    assert site.comments == ("the app",)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a.test {\n  respond hi\n", 1, "never closed"),
        ("}\n", 1, "unexpected '}'"),
        ("a.test {\n} x\n", 2, "after '}'"),
        ('a.test {\n  respond "hi\n}\n', 2, "unterminated"),
    ],
)
def test_caddy_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(LintError) as err:
        caddy.parse_root(text, "Caddyfile")
    assert err.value.line == line and words in err.value.message


_CONFIGISH = st.text(alphabet=st.sampled_from(list("ab {};#'\"\\\n\t</>:$=")), max_size=200)


@settings(max_examples=300, deadline=None)
@given(_CONFIGISH)
def test_parsers_fail_only_with_lint_error(text: str) -> None:
    for parse in (nginx.parse_root, haproxy.parse_root, apache.parse_root, caddy.parse_root):
        try:
            root = parse(text, "fuzz.conf")
        except LintError as err:
            assert err.file == "fuzz.conf" and err.line >= 0
        else:
            assert all(n.line >= 1 for n in root.walk())
