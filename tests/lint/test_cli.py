"""`wsgate lint` end to end in-process: files on disk, exit status 0/1/2, formats, options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wsgate.cli import main

CLEAN = """\
server {
    location /ws/ {
        proxy_pass http://127.0.0.1:8000;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";  # only WebSockets come here
        proxy_read_timeout 1h;
    }
}
"""
BROKEN = "server {\n    location /ws/ {\n        proxy_pass http://127.0.0.1:8000;\n    }\n}\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["lint", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_exit_0_when_only_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run([write(tmp_path, "site.conf", CLEAN)], capsys)
    assert status == 0
    assert "warning nginx_connection_hardcoded" in out


def test_exit_1_with_an_error_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "site.conf", BROKEN)
    status, out, _err = run([path], capsys)
    assert status == 1
    assert f"{path}:2: error nginx_http_version:" in out


def test_exit_2_with_the_parse_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, "site.conf", "server {\n  location / {\n    proxy_pass http://a\n  }\n}\n"
    )
    status, out, err = run([path], capsys)
    assert status == 2 and out == ""
    assert err == f'{path}:4: error: directive "proxy_pass" is not terminated by ";"\n'


def test_exit_2_for_a_missing_file_and_other_files_still_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "site.conf", BROKEN)
    status, out, err = run([str(tmp_path / "nope.conf"), good, "--kind", "nginx"], capsys)
    assert status == 2
    assert "nope.conf: error: cannot read" in err and "No such file" in err
    assert "error nginx_http_version" in out


def test_exit_2_when_the_kind_cannot_be_guessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _out, err = run([write(tmp_path, "notes.txt", "hello world\n")], capsys)
    assert status == 2 and "pass --kind" in err


def test_missing_include_points_at_the_include_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "nginx.conf", "events {}\nhttp {\n    include missing.conf;\n}\n")
    status, _out, err = run([path], capsys)
    assert status == 2 and err.startswith(f"{path}:3: error: include target not found")


def test_includes_are_followed_and_findings_name_the_included_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main_conf = write(
        tmp_path,
        "nginx.conf",
        "events { worker_connections 4096; }\nhttp {\n    include sites/*.conf;\n}\n",
    )
    site = write(tmp_path, "sites/app.conf", BROKEN)
    status, out, _err = run([main_conf, "--min-severity", "error"], capsys)
    assert status == 1
    assert f"{site}:2: error nginx_http_version:" in out
    assert out.endswith("3 errors, 0 warnings, 0 infos in 2 files\n")


def test_include_loop_is_an_error_not_a_hang(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "a.conf", "http { include a.conf; }\n")
    status, _out, err = run([path, "--kind", "nginx"], capsys)
    assert status == 2 and "nested too deep" in err


def test_json_and_sarif_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "site.conf", BROKEN)
    status, out, _err = run([path, "--format", "json"], capsys)
    assert status == 1
    assert {item["code"] for item in json.loads(out)} >= {"nginx_http_version"}
    status, out, _err = run([path, "--format", "sarif"], capsys)
    assert status == 1 and json.loads(out)["version"] == "2.1.0"


def test_min_severity_hides_lower_levels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "server { location /api/ { proxy_pass http://app; } }\n"
    path = write(tmp_path, "site.conf", text)
    _status, out, _err = run([path], capsys)
    assert "info nginx_http_version" in out
    _status, out, _err = run([path, "--min-severity", "warning"], capsys)
    assert out == "0 errors, 0 warnings, 0 infos in 1 file\n"


def test_ws_path_and_kind_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "proxy.txt", "server { location /feed/ { proxy_pass http://app; } }\n")
    status, _out, _err = run([path, "--kind", "nginx"], capsys)
    assert status == 0
    status, out, _err = run([path, "--kind", "nginx", "--ws-path", "/feed"], capsys)
    assert status == 1 and "error nginx_upgrade_not_forwarded" in out


def test_capacity_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = run([write(tmp_path, "a.conf", CLEAN), "--capacity", "0"], capsys)
    assert status == 2 and "--capacity" in err


def test_haproxy_apache_caddy_and_toml_are_detected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {
        "lb.cfg": "frontend fe\n    bind :80\n    default_backend ws\nbackend ws\n"
        "    server s 127.0.0.1:1\n",
        "site.conf": "<VirtualHost *:80>\n  ProxyPass /ws/ http://a/\n</VirtualHost>\n",
        "Caddyfile": "a.test {\n  reverse_proxy /ws/* 127.0.0.1:1 {\n"
        "    header_up -Upgrade\n  }\n}\n",
        "gw.toml": '[[routes]]\npool = "nope"\n',
    }
    for name, text in files.items():
        status, out, _err = run([write(tmp_path, name, text)], capsys)
        assert status in (0, 1), (name, out)
        assert out.count(": ") >= 1
    _s, out, _e = run([str(tmp_path / "site.conf")], capsys)
    assert "error apache_no_upgrade" in out
    _s, out, _e = run([str(tmp_path / "Caddyfile")], capsys)
    assert "error caddy_upgrade_header_removed" in out
    _s, out, _e = run([str(tmp_path / "gw.toml")], capsys)
    assert "error wsgate_route_unknown_pool" in out
    _s, out, _e = run([str(tmp_path / "lb.cfg")], capsys)
    assert "warning haproxy_no_timeout_connect" in out


def test_fail_on_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "site.conf", CLEAN)
    assert run([path], capsys)[0] == 0
    assert run([path, "--fail-on", "warning"], capsys)[0] == 1
    # Hidden findings do not fail the run.
    assert run([path, "--fail-on", "warning", "--min-severity", "error"], capsys)[0] == 0
