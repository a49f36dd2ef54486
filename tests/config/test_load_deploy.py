"""The keys for running wsgate in production: the paced drain (and, below, TLS and the
environment)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wsgate.config import ConfigError, load_config

POOL = """
[pools.app]
backends = ["127.0.0.1:9001"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return path


def test_drain_defaults(tmp_path: Path) -> None:
    server = load_config(write(tmp_path, POOL)).server
    assert server.drain_grace_s == 1.0
    assert server.drain_window_s == 10.0
    assert server.drain_rate_per_s == 0.0
    assert server.drain_close_code == 1001


def test_drain_keys_load(tmp_path: Path) -> None:
    text = (
        """
[server]
drain_timeout_s = 60
drain_grace_s = 5
drain_window_s = 40
drain_rate_per_s = 200
drain_close_code = 1012
"""
        + POOL
    )
    server = load_config(write(tmp_path, text)).server
    assert (server.drain_grace_s, server.drain_window_s) == (5.0, 40.0)
    assert server.drain_rate_per_s == 200.0
    assert server.drain_close_code == 1012


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("drain_close_code = 1000", "server.drain_close_code: expected 1001 (going away) or 1012"),
        ("drain_close_code = 1", "server.drain_close_code: expected an integer >= 1000"),
        ("drain_window_s = -1", "server.drain_window_s: expected a number >= 0"),
        ("drain_grace_s = '2s'", "server.drain_grace_s: expected a number >= 0"),
        ("drain_rate_per_s = -5", "server.drain_rate_per_s: expected a number >= 0"),
    ],
)
def test_bad_drain_keys(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, f"[server]\n{line}\n{POOL}"))


# == TLS ======================================================================================
def test_tls_listener_and_certificates_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_text("x")
    (tmp_path / "a.key").write_text("x")
    text = f"""
[server]
listen = ["127.0.0.1:8080", {{ address = "0.0.0.0:8443", tls = true }}]
[tls]
min_version = "1.3"
[[tls.certificates]]
cert = "a.pem"
key = "{tmp_path / "a.key"}"
names = ["A.Example.", "*.b.example"]
[pools.app]
backends = ["127.0.0.1:9443"]
tls = true
tls_ca_file = "a.pem"
tls_server_name = "app.internal"
"""
    config = load_config(write(tmp_path, text))
    plain, secure = config.server.listen
    assert not plain.tls and secure.tls and str(secure) == "0.0.0.0:8443"
    (certificate,) = config.tls.certificates
    assert certificate.cert == str(tmp_path / "a.pem")
    assert certificate.key == str(tmp_path / "a.key")
    assert certificate.names == ("a.example", "*.b.example")
    assert config.tls.min_version == "1.3"
    pool = config.pools["app"]
    assert pool.tls and pool.tls_ca_file == str(tmp_path / "a.pem")
    assert pool.tls_server_name == "app.internal" and not pool.tls_insecure


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[server]\nlisten = [{ address = "127.0.0.1:8443", tls = true }]\n' + POOL,
            "tls.certificates: expected [[tls.certificates]] for the TLS listener 127.0.0.1:8443",
        ),
        (
            "[tls]\n[[tls.certificates]]\ncert = 'missing.pem'\nkey = 'x'\n" + POOL,
            "tls.certificates[0].cert: expected a readable PEM file",
        ),
        ('[tls]\nmin_version = "1.1"\n' + POOL, "tls.min_version: expected one of 1.2, 1.3"),
        ("[tls]\n" + POOL, "tls.certificates: expected at least one [[tls.certificates]]"),
        (
            '[server]\nlisten = [{ address = "127.0.0.1:8443", tls = "yes" }]\n' + POOL,
            "server.listen[0].tls: expected true or false",
        ),
        (
            '[server]\nlisten = [{ host = "127.0.0.1:8443" }]\n' + POOL,
            "server.listen[0].address: expected a string (required)",
        ),
        (POOL + "tls_insecure = true\n", "pools.app.tls: expected true when tls_ca_file"),
        (POOL + "tls = true\ntls_ca_file = 'nope.pem'\n", "pools.app.tls_ca_file: expected a"),
    ],
)
def test_bad_tls_keys(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text))


def test_the_admin_listener_takes_no_tls_table(tmp_path: Path) -> None:
    text = POOL + '[admin]\nlisten = [{ address = "127.0.0.1:9180", tls = true }]\n'
    with pytest.raises(ConfigError, match=re.escape('admin.listen[0]: expected a "host:port"')):
        load_config(write(tmp_path, text))
