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
