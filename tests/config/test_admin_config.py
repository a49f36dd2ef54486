"""The [admin] table: defaults, ranges, and the token rule for non-loopback addresses."""

from __future__ import annotations

import pytest

from wsgate.config import ConfigError, parse_config
from wsgate.config.model import Address, AdminConfig

POOLS = {"pools": {"app": {"backends": ["127.0.0.1:9001"]}}}
TOKEN = "s3cret-token-0123456789"


def admin(**table: object) -> AdminConfig:
    return parse_config({**POOLS, "admin": table}, "gw.toml").admin


def test_no_table_no_listener() -> None:
    assert not parse_config(dict(POOLS), "gw.toml").admin.enabled


def test_defaults() -> None:
    found = admin()
    assert found.enabled and found.metrics and found.token == ""
    assert found.listen == Address("127.0.0.1", 9180)
    assert found.backend_drain_s == 30.0


def test_values() -> None:
    found = admin(listen="0.0.0.0:9999", token=TOKEN, metrics=False, backend_drain_s=5)
    assert found.listen == Address("0.0.0.0", 9999)
    assert (found.token, found.metrics, found.backend_drain_s) == (TOKEN, False, 5.0)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert admin(listen=f"{host}:9180").enabled


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"listen": "0.0.0.0:9180"}, "admin.token", "not a loopback address"),
        ({"listen": "[::]:9180"}, "admin.token", "not a loopback address"),
        ({"token": "short"}, "admin.token", "at least 16"),
        ({"token": "has a space in it, see"}, "admin.token", "no spaces"),
        ({"listen": "nowhere"}, "admin.listen[0]", "HOST:PORT"),
        ({"listen": ["127.0.0.1:1", "127.0.0.1:2"]}, "admin.listen", 'one "host:port"'),
        ({"metrics": "yes"}, "admin.metrics", "true or false"),
        ({"backend_drain_s": -1}, "admin.backend_drain_s", ">= 0"),
        ({"backend_drain_s": float("inf")}, "admin.backend_drain_s", "from 0 to 86400"),
        ({"backend_drain_s": 86_401}, "admin.backend_drain_s", "from 0 to 86400"),
        ({"tokn": TOKEN}, "admin.tokn", "a known key"),
    ],
)
def test_errors_name_file_and_key(table: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        admin(**table)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"gw.toml: {key}: ")
    assert words in str(caught.value)


def test_drain_time_at_its_bounds() -> None:
    assert admin(backend_drain_s=0).backend_drain_s == 0
    assert admin(backend_drain_s=86_400).backend_drain_s == 86_400
