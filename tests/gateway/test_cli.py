from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wsgate.cli import main


def test_check_accepts_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[pools.app]\nbackends = ["127.0.0.1:9001"]\n')
    assert main(["check", str(path)]) == 0
    assert "ok: listen 127.0.0.1:8080; pools app (1 backends); 1 routes" in capsys.readouterr().out


def test_check_names_file_key_and_expectation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[pools.app]\nbackends = ["127.0.0.1:9001"]\nqueue_timeout_s = "long"\n')
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"wsgate: {path}: pools.app.queue_timeout_s: expected a number >= 0, got 'long'"
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--config", "/nonexistent/wsgate.toml"], "expected a readable UTF-8 file"),
        (["--listen", "127.0.0.1:1"], "--upstream: expected at least one --upstream"),
        (["--upstream", "nohost"], "pools.default.backends[0]: expected HOST:PORT"),
        (["--upstream", "127.0.0.1:1", "--workers", "0"], "--workers: expected an integer >= 1"),
    ],
)
def test_serve_refuses_bad_input_without_a_traceback(args: list[str], words: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsgate", "serve", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "wsgate",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                "127.0.0.1:1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr
