"""`wsgate doctor` arguments: bad ones exit 2 with a clear message, never a traceback.

Every case here fails before any socket is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgate.cli import main
from wsgate.doctor.cli import ArgError, parse_connect_to


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["http://127.0.0.1/"], "not a ws:// or wss:// URL"),
        (["ws://127.0.0.1/", "--header", "NoColon"], "--header must look like"),
        (["ws://127.0.0.1/", "--header", "Bad Name: x"], "--header must look like"),
        (["ws://127.0.0.1/", "--idle-bisect"], "--idle-bisect needs --idle"),
        (["ws://127.0.0.1/", "--connect-to", "nohost"], "--connect-to must be HOST:PORT"),
        (["ws://127.0.0.1/", "--connect-to", "h:70000"], "--connect-to must be HOST:PORT"),
        (["ws://127.0.0.1/", "--cacert", "/no/such/file.pem"], "--cacert: no such file"),
    ],
)
def test_bad_arguments_in_handler(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout", "0"], "--timeout must be > 0"),
        (["--timeout", "abc"], "--timeout must be a number"),
        (["--idle", "-1"], "--idle must be > 0"),
        (["--idle", "3601"], "<= 3600"),
        (["--burst", "0"], "--burst must be 1..2000"),
        (["--burst", "2001"], "--burst must be 1..2000"),
        (["--burst", "x"], "--burst must be an integer"),
        (["--idle-conns", "1"], "--idle-conns must be 2..64"),
        (["--nope"], "unrecognized arguments"),
    ],
)
def test_bad_option_values_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", "ws://127.0.0.1/", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_limits_accept_their_bounds(tmp_path: Path) -> None:
    # N and N+1 of each limit: the upper bounds themselves parse.
    from wsgate.cli import build_parser

    args = build_parser().parse_args(
        ["doctor", "ws://h/", "--burst", "2000", "--idle", "3600", "--idle-conns", "64"]
    )
    assert (args.burst, args.idle, args.idle_conns) == (2000, 3600.0, 64)


def test_parse_connect_to() -> None:
    assert parse_connect_to("127.0.0.1:9000", False) == ("127.0.0.1", 9000, False)
    assert parse_connect_to("127.0.0.1:9000", True) == ("127.0.0.1", 9000, True)
    assert parse_connect_to("ws://127.0.0.1:9000/", True) == ("127.0.0.1", 9000, False)
    assert parse_connect_to("wss://b:1", False) == ("b", 1, True)
    assert parse_connect_to("[::1]:9000", False) == ("::1", 9000, False)
    with pytest.raises(ArgError):
        parse_connect_to(":9000", False)
