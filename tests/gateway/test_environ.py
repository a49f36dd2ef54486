"""`serve`'s environment variables (gateway/environ.py): each fills its own flag when the
flag was not given; bad values name the variable."""

from __future__ import annotations

import argparse

import pytest

from wsgate.cli import build_parser
from wsgate.config import ConfigError
from wsgate.gateway.environ import VARIABLES, apply_environment


def serve_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_defaults_without_flags_or_variables() -> None:
    args = serve_args()
    assert apply_environment(args, {}) == []
    assert (args.workers, args.log_format, args.log_level) == (1, "json", "info")
    assert args.config is None and args.listen == [] and args.upstream == []
    assert args.admin is None and args.pid_file is None


def test_every_variable_fills_its_flag() -> None:
    environ = {
        "WSGATE_CONFIG": "/etc/wsgate/wsgate.toml",
        "WSGATE_LISTEN": "0.0.0.0:8080, [::]:8080",
        "WSGATE_UPSTREAMS": "10.0.0.1:9000,10.0.0.2:9000,",
        "WSGATE_WORKERS": "4",
        "WSGATE_ADMIN": "127.0.0.1:9180",
        "WSGATE_PID_FILE": "/run/wsgate/wsgate.pid",
        "WSGATE_LOG_FORMAT": "text",
        "WSGATE_LOG_LEVEL": "warning",
    }
    args = serve_args()
    assert sorted(apply_environment(args, environ)) == sorted(VARIABLES)
    assert args.config == "/etc/wsgate/wsgate.toml"
    assert args.listen == ["0.0.0.0:8080", "[::]:8080"]
    assert args.upstream == ["10.0.0.1:9000", "10.0.0.2:9000"]
    assert args.workers == 4 and args.admin == "127.0.0.1:9180"
    assert args.pid_file == "/run/wsgate/wsgate.pid"
    assert (args.log_format, args.log_level) == ("text", "warning")


def test_a_flag_wins_over_its_variable_and_empty_is_unset() -> None:
    args = serve_args("--workers", "2", "--listen", "127.0.0.1:1")
    environ = {"WSGATE_WORKERS": "8", "WSGATE_LISTEN": "0.0.0.0:2", "WSGATE_ADMIN": ""}
    assert apply_environment(args, environ) == []
    assert args.workers == 2 and args.listen == ["127.0.0.1:1"] and args.admin is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("WSGATE_WORKERS", "0", "environment: WSGATE_WORKERS: expected an integer >= 1, got '0'"),
        ("WSGATE_WORKERS", "two", "WSGATE_WORKERS: expected an integer >= 1"),
        ("WSGATE_LOG_FORMAT", "xml", "WSGATE_LOG_FORMAT: expected one of json, text"),
        ("WSGATE_LOG_LEVEL", "loud", "WSGATE_LOG_LEVEL: expected one of"),
        ("WSGATE_LISTEN", " , ", "WSGATE_LISTEN: expected comma-separated HOST:PORT"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        apply_environment(serve_args(), {name: value})
    assert expected in str(caught.value)
