from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from wsgate.config import Address, ConfigError, load_config, single_pool_config
from wsgate.config.model import HealthCheckConfig, PoolConfig, ServerConfig

GOOD = """
[server]
listen = ["127.0.0.1:8080", "[::1]:8080"]
max_header_bytes = 8192

[pools.app]
backends = ["127.0.0.1:9001", "127.0.0.1:9002"]
connect_timeout_s = 2

[pools.chat]
backends = ["127.0.0.1:9100"]
tunnel_idle_timeout_s = 600

[[routes]]
path_prefix = "/ws"
pool = "chat"

[[routes]]
host = "App.Example"
pool = "app"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return path


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.server.listen == (Address("127.0.0.1", 8080), Address("::1", 8080))
    assert config.server.max_header_bytes == 8192
    assert config.server.header_timeout_s == 10.0
    app = config.pools["app"]
    assert app.connect_timeout_s == 2.0
    assert app.response_timeout_s == 60.0
    assert app.tunnel_idle_timeout_s == 0.0
    assert app.balance == "least_conn"
    assert app.health.kind == "tcp"
    assert config.pools["chat"].tunnel_idle_timeout_s == 600.0
    assert [r.host for r in config.routes] == ["*", "app.example"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[pools.app]\nbackends = ["127.0.0.1:9001"]\nconnect_timeout_s = "5s"\n',
            "gw.toml: pools.app.connect_timeout_s: expected a number >= 0.001, got '5s'",
        ),
        (
            '[pools.app]\nbackends = ["localhost"]\n',
            "gw.toml: pools.app.backends[0]: expected HOST:PORT, got 'localhost'",
        ),
        (
            '[pools.app]\nbackends = ["127.0.0.1:70000"]\n',
            "pools.app.backends[0]: expected a port from 1 to 65535",
        ),
        ("[pools.app]\n", "gw.toml: pools.app.backends: expected a non-empty list of"),
        (
            '[pools.app]\nbackends = ["127.0.0.1:1"]\nconect_timeout_s = 1\n',
            "gw.toml: pools.app.conect_timeout_s: expected a known key",
        ),
        (
            '[server]\nmax_header_bytes = 10\n[pools.a]\nbackends = ["127.0.0.1:1"]\n',
            "server.max_header_bytes: expected an integer >= 256, got 10",
        ),
        (
            '[pools.a]\nbackends = ["127.0.0.1:1"]\n[[routes]]\npool = "b"\n',
            "gw.toml: routes[0].pool: expected a pool name (a), got 'b'",
        ),
        (
            '[pools.a]\nbackends = ["127.0.0.1:1"]\n[pools.b]\nbackends = ["127.0.0.1:2"]\n',
            "gw.toml: routes: expected [[routes]] entries",
        ),
        ("[pools.a\n", "gw.toml: expected valid TOML"),
        ("", "gw.toml: pools: expected at least one [pools.NAME] table"),
        (
            '[pools.a]\nbackends = ["127.0.0.1:1"]\nbalance = "random"\n',
            "pools.a.balance: expected one of least_conn, round_robin, weighted, consistent_hash, "
            "got 'random'",
        ),
        (
            'typo = 1\n[pools.a]\nbackends = ["127.0.0.1:1"]\n',
            "gw.toml: typo: expected a known key",
        ),
    ],
)
def test_bad_configs_name_file_key_and_expectation(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)


def test_weighted_backends_health_and_hash_key(tmp_path: Path) -> None:
    text = """
[pools.app]
backends = [{ address = "127.0.0.1:9001", weight = 3 }, "127.0.0.1:9002"]
balance = "consistent_hash"
hash_key = "cookie:sid"
[pools.app.health]
kind = "websocket"
path = "/ws"
"""
    pool = load_config(write(tmp_path, text)).pools["app"]
    assert [b.weight for b in pool.backends] == [3, 1]
    assert pool.hash_key == "cookie:sid"
    assert pool.health.expect_status == 101
    assert pool.health.interval_when_down_s == pool.health.interval_s == 5.0
    assert not pool.preconnect


def test_down_interval_and_preconnect(tmp_path: Path) -> None:
    text = """
[pools.app]
backends = ["127.0.0.1:9001"]
preconnect = true
[pools.app.health]
interval_s = 2
down_interval_s = 0.2
"""
    pool = load_config(write(tmp_path, text)).pools["app"]
    assert pool.preconnect
    assert (pool.health.interval_s, pool.health.interval_when_down_s) == (2.0, 0.2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('hash_key = "cookie"', "pools.a.hash_key: expected"),
        ("[pools.a.health]\nkind = 'icmp'", "pools.a.health.kind: expected one of tcp"),
        ("[pools.a.health]\nrise = 0", "pools.a.health.rise: expected an integer >= 1, got 0"),
        ("retry_on_status = ['502']", "pools.a.retry_on_status: expected a list of integers"),
        (
            "[pools.a.health]\ndown_interval_s = 0.001",
            "pools.a.health.down_interval_s: expected 0 (as interval_s) or at least 0.05",
        ),
        ("preconnect = 'yes'", "pools.a.preconnect: expected"),
    ],
)
def test_bad_pool_policies(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, f'[pools.a]\nbackends = ["127.0.0.1:1"]\n{text}\n'))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a readable UTF-8 file"):
        load_config(tmp_path / "nope.toml")


def test_single_pool_config_from_flags() -> None:
    config = single_pool_config(["127.0.0.1:7000"], ["127.0.0.1:7001", "127.0.0.1:7002"])
    assert list(config.pools) == ["default"]
    assert len(config.pools["default"].backends) == 2
    assert config.routes[0].path_prefix == "/"
    with pytest.raises(ConfigError, match=r"pools\.default\.backends\[0\]"):
        single_pool_config([], ["nope"])


# -- D8: every number is finite and in a sane range ----------------------------------------
# `header_timeout_s = nan` and `tunnel_high_water_bytes = 10^23` used to pass the check and
# then fail every connection with a traceback; `connect_timeout_s = nan` made requests hang.


def _numeric_keys() -> list[tuple[str, str, str]]:
    """(TOML table, key, "int" or "float") for every numeric setting in the model."""
    tables = [
        ("server", ServerConfig),
        ("pools.a", PoolConfig),
        ("pools.a.health", HealthCheckConfig),
    ]
    keys = []
    for table, cls in tables:
        for field in dataclasses.fields(cls):
            if field.type in ("int", "float"):
                keys.append((table, field.name, str(field.type)))
    return keys


NUMERIC_KEYS = _numeric_keys()


def _with(table: str, line: str) -> str:
    """A config with one extra line in `table` (and the pool it needs)."""
    pool = '[pools.a]\nbackends = ["127.0.0.1:1"]\n'
    if table == "server":
        return f"[server]\n{line}\n{pool}"
    if table == "pools.a":
        return f"{pool}{line}\n"
    return f"{pool}[{table}]\n{line}\n"


def test_the_model_has_numeric_keys_to_check() -> None:
    names = {name for _, name, _ in NUMERIC_KEYS}
    assert {"header_timeout_s", "tunnel_high_water_bytes", "connect_timeout_s"} <= names
    assert {"body_timeout_s", "max_response_header_bytes", "interval_s", "rise"} <= names


@pytest.mark.parametrize("bad", ["nan", "inf", "+inf", "-nan", "1e300", "100000000000000000000000"])
@pytest.mark.parametrize(("table", "name", "kind"), NUMERIC_KEYS)
def test_every_number_is_finite_and_bounded(
    tmp_path: Path, table: str, name: str, kind: str, bad: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, _with(table, f"{name} = {bad}")))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'gw.toml'}: {table}.{name}: expected ")
    assert "\n" not in message
    expected = "an integer" if kind == "int" else "a number"
    assert f"expected {expected}" in message


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [
        (
            "server",
            "header_timeout_s = nan",
            "server.header_timeout_s: expected a number from 0.001 to 86400, got nan",
        ),
        (
            "server",
            "tunnel_high_water_bytes = 100000000000000000000000",
            "server."
            "tunnel_high_water_bytes: expected an integer from 1024 to 1073741824, got "
            "100000000000000000000000",
        ),
        (
            "pools.a",
            "connect_timeout_s = nan",
            "pools.a.connect_timeout_s: expected a number from 0.001 to 86400, got nan",
        ),
        (
            "pools.a",
            "tunnel_idle_timeout_s = inf",
            "pools.a.tunnel_idle_timeout_s: expected a number from 0 to 86400, got inf",
        ),
        (
            "pools.a",
            "queue_timeout_s = -inf",
            "pools.a.queue_timeout_s: expected a number >= 0, got -inf",
        ),
        (
            "pools.a",
            "queue_timeout_s = 86401",
            "pools.a.queue_timeout_s: expected a number from 0 to 86400, got 86401",
        ),
        (
            "pools.a",
            "queue_size = 10000001",
            "pools.a.queue_size: expected an integer from 0 to 10000000, got 10000001",
        ),
        (
            "pools.a",
            "retry_on_status = [502, 5030]",
            "pools.a.retry_on_status[1]: expected an integer from 100 to 599, got 5030",
        ),
        (
            "pools.a.health",
            "expect_status = 1000",
            "pools.a.health.expect_status: expected an integer from 100 to 599, got 1000",
        ),
    ],
)
def test_out_of_range_messages(tmp_path: Path, table: str, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, _with(table, line)))
    assert str(info.value) == f"{tmp_path / 'gw.toml'}: {message}"


def test_backend_weight_is_bounded(tmp_path: Path) -> None:
    text = '[pools.a]\nbackends = [{ address = "127.0.0.1:1", weight = 1000000 }]\n'
    with pytest.raises(
        ConfigError,
        match=r"pools\.a\.backends\[0\]\.weight: expected an "
        r"integer from 1 to 1000, got 1000000",
    ):
        load_config(write(tmp_path, text))


def test_largest_sane_values_still_load(tmp_path: Path) -> None:
    text = """
[server]
header_timeout_s = 86400
keepalive_timeout_s = 86400.0
tunnel_high_water_bytes = 1073741824
max_connections = 10000000
client_handshake_rate = 1e6
[pools.a]
backends = [{ address = "127.0.0.1:1", weight = 1000 }]
connect_timeout_s = 0.001
tunnel_idle_timeout_s = 86400
retry_on_status = [100, 599]
[pools.a.health]
expect_status = 599
"""
    config = load_config(write(tmp_path, text))
    assert config.server.header_timeout_s == 86400.0
    assert config.server.tunnel_high_water_bytes == 1 << 30
    assert config.pools["a"].tunnel_idle_timeout_s == 86400.0
    assert config.pools["a"].backends[0].weight == 1000


# -- listen: one address once ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        (
            '["127.0.0.1:8080", "127.0.0.1:8080"]',
            "server.listen[1]: expected an address different from server.listen[0] "
            "(127.0.0.1:8080), got '127.0.0.1:8080'",
        ),
        (
            '["127.0.0.1:8080", "[::1]:8080", "[0:0::1]:8080"]',
            "server.listen[2]: expected an address different from server.listen[1] ([::1]:8080)",
        ),
        (
            '["0.0.0.0:8080", "127.0.0.1:8081", "127.0.0.1:8080"]',
            "server.listen[2]: expected an address on another port than the catch-all "
            "server.listen[0] (0.0.0.0:8080), got '127.0.0.1:8080'",
        ),
        ('["[::1]:80", "[::]:80"]', "server.listen[1]: expected an address on another port"),
        ('["Localhost:80", "localhost:80"]', "server.listen[1]: expected an address different"),
    ],
)
def test_duplicate_listen_addresses_are_rejected(tmp_path: Path, listen: str, message: str) -> None:
    text = f'[server]\nlisten = {listen}\n[pools.a]\nbackends = ["127.0.0.1:1"]\n'
    with pytest.raises(ConfigError, match=re.escape(f"gw.toml: {message}")):
        load_config(write(tmp_path, text))


def test_distinct_listen_addresses_load(tmp_path: Path) -> None:
    listen = '["127.0.0.1:8080", "127.0.0.1:8081", "[::1]:8080", "0.0.0.0:9000", "[::]:9000"]'
    text = f'[server]\nlisten = {listen}\n[pools.a]\nbackends = ["127.0.0.1:1"]\n'
    assert len(load_config(write(tmp_path, text)).server.listen) == 5


def test_duplicate_listen_flags_are_rejected() -> None:
    with pytest.raises(ConfigError, match=re.escape("command line: server.listen[1]: expected")):
        single_pool_config(["127.0.0.1:7000", "127.0.0.1:7000"], ["127.0.0.1:7001"])


@pytest.mark.parametrize(
    ("backend", "words"),
    [
        (
            "ws://127.0.0.1:20101/chat",
            'backends[0]: expected HOST:PORT, not a URL: write "127.0.0.1:20101" (requests '
            "keep the path the client sent), got 'ws://127.0.0.1:20101/chat'",
        ),
        ("http://backend.internal/", 'not a URL: write "backend.internal:80"'),
        (
            "wss://chat.example.com/ws",
            'not a URL (for wss:// backends write "chat.example.com:443" and set tls = true',
        ),
        ("127.0.0.1:20101/chat", 'not a URL: write "127.0.0.1:20101"'),
    ],
)
def test_a_url_as_backend_says_a_backend_is_host_port(
    tmp_path: Path, backend: str, words: str
) -> None:
    path = tmp_path / "wsgate.toml"
    path.write_text(f'[pools.app]\nbackends = ["{backend}"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: pools.app.backends[0]: expected HOST:PORT, not a URL")
    assert words in message
