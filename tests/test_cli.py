"""The `wsgate` command itself: version flags and the help without a sub-command."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from wsgate import __version__
from wsgate.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flags(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([flag])
    assert exited.value.code == 0
    out = capsys.readouterr().out  # the build is named: tests/test_build.py has the words
    assert out.startswith(f"wsgate {__version__} (") and out.endswith(")\n")
    assert "(compiled: mypyc)" in out or "(pure Python" in out


def test_version_matches_the_package_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
