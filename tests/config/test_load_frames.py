"""The frame and handshake-policy keys of a pool: defaults off, ranges, and errors that
name the file and the key (an entry of a list by its index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgate.config import ConfigError, load_config
from wsgate.config.model import PoolConfig

POOL = '[pools.a]\nbackends = ["127.0.0.1:1"]\n'


def load(tmp_path: Path, lines: str) -> PoolConfig:
    path = tmp_path / "gw.toml"
    path.write_text(POOL + lines)
    return load_config(path).pools["a"]


def error(tmp_path: Path, lines: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, lines)
    return str(info.value).removeprefix(f"{tmp_path / 'gw.toml'}: ")


def test_everything_is_off_by_default(tmp_path: Path) -> None:
    pool = load(tmp_path, "")
    assert not pool.frame_aware
    assert (pool.ping_idle_s, pool.max_message_bytes, pool.max_frame_bytes) == (0, 0, 0)
    assert (pool.max_messages_per_s, pool.message_burst, pool.ping_timeout_s) == (0, 0, 20)
    assert pool.allowed_origins == pool.allowed_subprotocols == ()
    assert pool.subprotocol_fallback == "reject"


def test_the_keys_load(tmp_path: Path) -> None:
    pool = load(
        tmp_path,
        "ping_idle_s = 10\nping_timeout_s = 5\nmax_message_bytes = 1048576\n"
        "max_frame_bytes = 65536\nmax_messages_per_s = 50\nmessage_burst = 100\n"
        'allowed_origins = ["https://app.example.com", "https://*.example.org"]\n'
        'allowed_subprotocols = ["chat.v2", "graphql-ws"]\nsubprotocol_fallback = "forward"\n',
    )
    assert pool.frame_aware
    assert (pool.ping_idle_s, pool.ping_timeout_s) == (10.0, 5.0)
    assert (pool.max_message_bytes, pool.max_frame_bytes) == (1_048_576, 65_536)
    assert (pool.max_messages_per_s, pool.message_burst) == (50.0, 100)
    assert pool.allowed_origins == ("https://app.example.com", "https://*.example.org")
    assert pool.allowed_subprotocols == ("chat.v2", "graphql-ws")
    assert pool.subprotocol_fallback == "forward"


@pytest.mark.parametrize("key", ["ping_idle_s", "max_message_bytes", "max_frame_bytes"])
def test_each_frame_key_alone_makes_the_pool_frame_aware(tmp_path: Path, key: str) -> None:
    assert load(tmp_path, f"{key} = 1000\n").frame_aware


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "ping_idle_s = 0.01",
            "pools.a.ping_idle_s: expected 0 (off) or a number from 0.1 to 86400, got 0.01",
        ),
        ("ping_timeout_s = 0", "pools.a.ping_timeout_s: expected a number >= 0.001, got 0"),
        (
            "max_message_bytes = 1073741825",
            "pools.a.max_message_bytes: expected an integer from 0 to 1073741824, got 1073741825",
        ),
        ("max_frame_bytes = -1", "pools.a.max_frame_bytes: expected an integer >= 0, got -1"),
        (
            "max_messages_per_s = nan",
            "pools.a.max_messages_per_s: expected a number from 0 to 1e+06, got nan",
        ),
        (
            'allowed_origins = ["https://ok.example", "example.com"]',
            'pools.a.allowed_origins[1]: expected "scheme://host[:port]" (no path), '
            '"https://*.example.com", "null" or "*", got \'example.com\'',
        ),
        (
            'allowed_origins = "https://app.example.com"',
            "pools.a.allowed_origins: expected a list of strings, got 'https://app.example.com'",
        ),
        (
            'allowed_subprotocols = ["chat", "two words"]',
            "pools.a.allowed_subprotocols[1]: expected a subprotocol name (an HTTP token), "
            "got 'two words'",
        ),
        (
            'subprotocol_fallback = "drop"',
            "pools.a.subprotocol_fallback: expected one of reject, forward, got 'drop'",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, lines: str, message: str) -> None:
    assert error(tmp_path, lines + "\n") == message


def test_ping_idle_at_the_floor_is_accepted(tmp_path: Path) -> None:
    assert load(tmp_path, "ping_idle_s = 0.1\n").ping_idle_s == 0.1
