from __future__ import annotations

import json
import os
from pathlib import Path

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
        ("wss://127.0.0.1/x", ("127.0.0.1", 443, "/x", "127.0.0.1")),  # TLS: port 443
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
        ("http://127.0.0.1/", "must start with ws://"),
        ("ws://127.0.0.1:99999/", "bad port"),
        ("ws:///x", "no host"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_target(url, allow_remote=False)


@pytest.fixture
def no_storm(monkeypatch: pytest.MonkeyPatch) -> None:
    """A storm must not start: bad arguments are found first."""
    from wsgate.storm import runner

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the storm started")

    monkeypatch.setattr(runner, "run_storm", refuse)


def storm_usage(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    from wsgate.cli import main

    assert main(["storm", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wsgate storm: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


URL = "ws://127.0.0.1:9/"


@pytest.mark.usefixtures("no_storm")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([URL, "--rate", "10/s"], "--rate needs --duration"),
        ([URL, "--ramp", "1:10"], "--ramp needs --duration"),
        ([URL, "--concurrency", "3", "--count", "30"], "--concurrency needs --duration"),
        ([URL, "--burst", "10", "--duration", "5s"], "--duration does not apply"),
        ([URL, "--burst", "10", "--count", "5"], "use it with --concurrency"),
        ([URL, "--burst", "10", "--capacity", "0"], "--capacity must be above 0"),
        ([URL, "--burst", "10", "--capacity", "fast"], "not a rate"),
    ],
)
def test_flags_that_do_not_go_together(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in storm_usage(capsys, *argv)


@pytest.mark.usefixtures("no_storm")
def test_output_paths_are_checked_before_the_storm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir" / "r.json"
    assert f"the directory {missing.parent} does not exist" in storm_usage(
        capsys, URL, "--burst", "5", "--json", str(missing)
    )
    assert "is a directory" in storm_usage(capsys, URL, "--burst", "5", "--html", str(tmp_path))
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert "is not a directory" in storm_usage(
        capsys, URL, "--burst", "5", "--html", str(a_file / "r.html")
    )
    same = str(tmp_path / "r.out")
    assert "name the same file" in storm_usage(
        capsys, URL, "--burst", "5", "--json", same, "--html", same
    )


@pytest.mark.usefixtures("no_storm")
def test_an_unwritable_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As root every directory is writable: ask the check as a user who may not write.
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # the os that storm.cli reads
    assert "cannot create files in" in storm_usage(
        capsys, URL, "--burst", "5", "--json", str(tmp_path / "r.json")
    )
    (tmp_path / "r.json").write_text("")
    assert "cannot write this file" in storm_usage(
        capsys, URL, "--burst", "5", "--json", str(tmp_path / "r.json")
    )


def test_a_write_that_fails_after_the_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wsgate.storm.cli import write_output

    gone = tmp_path / "gone"
    gone.mkdir()
    gone.rmdir()  # removed while the storm ran
    assert write_output(str(gone / "r.json"), lambda: "{}") is False
    err = capsys.readouterr().err
    assert err.startswith(f"wsgate storm: cannot write {gone / 'r.json'}: ")
    assert write_output(str(tmp_path / "r.json"), lambda: "{}") is True


def write_result(path: Path) -> Path:
    from tests.storm.test_report import make_result

    path.write_text(json.dumps(make_result(path.stem, 10.0)))
    return path


def test_compare_without_html_prints_the_table_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wsgate.cli import main

    a, b = write_result(tmp_path / "a.json"), write_result(tmp_path / "b.json")
    monkeypatch.chdir(tmp_path)
    assert main(["storm", "--compare", str(a), str(b)]) == 0
    out, err = capsys.readouterr()
    assert "wsgate storm: compare" in out
    assert "no --html PATH given: printed the table only" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]
    assert main(["storm", "--compare", str(a), str(b), "--html", "c.html"]) == 0
    assert (tmp_path / "c.html").read_text().startswith("<!doctype html>")


def test_compare_refuses_run_flags_and_overwriting_an_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write_result(tmp_path / "a.json"), write_result(tmp_path / "b.json")
    assert "--burst, --json do not apply" in storm_usage(
        capsys, "--compare", str(a), str(b), "--burst", "5", "--json", "x.json"
    )
    assert "would overwrite the result" in storm_usage(
        capsys, "--compare", str(a), str(b), "--html", str(b)
    )
    assert "does not exist" in storm_usage(
        capsys, "--compare", str(a), str(b), "--html", str(tmp_path / "no" / "c.html")
    )


def test_capacity_reaches_the_config() -> None:
    from wsgate.cli import build_parser
    from wsgate.storm.cli import build_config

    args = build_parser().parse_args(["storm", URL, "--burst", "500", "--capacity", "250/s"])
    assert build_config(args).capacity_per_s == 250.0
