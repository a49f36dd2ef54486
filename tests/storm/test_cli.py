from __future__ import annotations

import pytest

from wsgate.storm.cli import UsageError, parse_duration, parse_header, parse_rate, resolve_target


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10", 10.0), ("10s", 10.0), ("250ms", 0.25), ("2m", 120.0), ("1.5h", 5400.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "per_s"), [("100", 100.0), ("100/s", 100.0), ("6000/m", 100.0)])
def test_parse_rate(text: str, per_s: float) -> None:
    assert parse_rate(text) == per_s


@pytest.mark.parametrize("bad", ["", "ten", "-1s", "5 parsecs"])
def test_bad_duration(bad: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["fast", "-3", "10/week"])
def test_bad_rate(bad: str) -> None:
    with pytest.raises(UsageError, match="not a rate"):
        parse_rate(bad)


def test_parse_header() -> None:
    assert parse_header("X-A:  b c ") == ("X-A", "b c")
    with pytest.raises(UsageError):
        parse_header("novalue")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://127.0.0.1:8080/a?b=1", ("127.0.0.1", 8080, "/a?b=1", "127.0.0.1:8080")),
        ("ws://127.9.9.9/", ("127.9.9.9", 80, "/", "127.9.9.9")),
        ("ws://localhost:81", ("127.0.0.1", 81, "/", "localhost:81")),
        ("ws://[::1]:82/x", ("::1", 82, "/x", "[::1]:82")),
    ],
)
def test_loopback_targets_are_allowed(url: str, expected: tuple[str, int, str, str]) -> None:
    assert resolve_target(url, allow_remote=False) == expected


@pytest.mark.parametrize(
    "url",
    ["ws://10.0.0.1/", "ws://128.0.0.1/", "ws://[::2]/", "ws://example.com/", "ws://0.0.0.0/"],
)
def test_other_targets_are_refused_without_the_flag(url: str) -> None:
    with pytest.raises(UsageError, match="refusing to storm"):
        resolve_target(url, allow_remote=False)


def test_remote_ip_literal_passes_with_the_flag_without_traffic() -> None:
    # An IP literal resolves locally: no packet is sent by resolve_target.
    assert resolve_target("ws://10.0.0.1:9/", allow_remote=True)[:2] == ("10.0.0.1", 9)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("wss://127.0.0.1/", "wss:// is not supported"),
        ("http://127.0.0.1/", "must start with ws://"),
        ("ws://127.0.0.1:99999/", "bad port"),
        ("ws:///x", "no host"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_target(url, allow_remote=False)
