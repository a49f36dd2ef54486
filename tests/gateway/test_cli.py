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


RISKY = """\
[server]
listen = ["127.0.0.1:8080"]

[pools.chat]
backends = ["127.0.0.1:9001"]
queue_size = 0
connect_timeout_s = 0.5
tunnel_idle_timeout_s = 10
allowed_origins = ["*"]

[pools.spare]
backends = ["127.0.0.1:9002"]

[[routes]]
path_prefix = "/chat"
pool = "chat"
"""


def test_check_shows_what_lint_finds_and_warnings_do_not_fail_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wsgate.toml"
    path.write_text(RISKY)
    assert main(["check", str(path)]) == 0
    checked = capsys.readouterr().out.splitlines()
    assert checked[0].startswith(f"{path}: ok, with 5 lint finding(s) below: listen")
    assert main(["lint", str(path)]) == 0
    linted = capsys.readouterr().out.splitlines()
    # The same findings, in the same words and order, as `wsgate lint` prints.
    assert checked[1:] == linted
    assert sum(" warning wsgate_" in line for line in linted) == 5


def test_check_fails_on_a_lint_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No lint rule finds an error in a config the loader accepts today (those errors are
    # the loader's too), so one is added to the rules for wsgate configs.
    from wsgate.lint import engine
    from wsgate.lint.model import Config, Finding, Node, Options, finding

    real = engine._CHECKS["wsgate"]

    def with_an_error(config: Config, options: Options) -> list[Finding]:
        error = finding("wsgate_route_unknown_pool", Node("pool", (), config.files[0], 17), "x")
        return [*real(config, options), error]

    monkeypatch.setitem(engine._CHECKS, "wsgate", with_an_error)
    path = tmp_path / "wsgate.toml"
    path.write_text(RISKY)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: loads, but lint finds 1 error(s): listen")
    assert f"{path}:17: error wsgate_route_unknown_pool: x" in out


def test_check_and_lint_number_routes_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wsgate.toml"
    path.write_text(RISKY + '\n[[routes]]\npath_prefix = "/x"\npool = "nope"\n')
    assert main(["check", str(path)]) == 2
    assert "routes[1].pool: expected a pool name" in capsys.readouterr().err
    assert main(["lint", str(path)]) == 1
    assert "error wsgate_route_unknown_pool: routes[1] sends traffic to pool 'nope'" in (
        capsys.readouterr().out
    )
