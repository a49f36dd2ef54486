"""`wsgate check FILE` as a real process on configs that used to pass and then broke
every connection (D8: `nan`, `inf`, huge integers) or listened twice on one address: each
gets exit status 2 and one line that names the key, with no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

POOL = '[pools.app]\nbackends = ["127.0.0.1:9001"]\n'


def wsgate_argv() -> list[str]:
    """The installed `wsgate` script next to this Python (.venv/bin/wsgate), else -m."""
    script = Path(sys.executable).with_name("wsgate")
    return [str(script)] if script.exists() else [sys.executable, "-m", "wsgate"]


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return subprocess.run(
        [*wsgate_argv(), "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f"[server]\nheader_timeout_s = nan\n{POOL}", "server.header_timeout_s"),
        (
            f"[server]\ntunnel_high_water_bytes = 100000000000000000000000\n{POOL}",
            "server.tunnel_high_water_bytes",
        ),
        (f"{POOL}connect_timeout_s = nan\n", "pools.app.connect_timeout_s"),
        (f"{POOL}response_timeout_s = inf\n", "pools.app.response_timeout_s"),
        (f"{POOL}[pools.app.health]\ninterval_s = nan\n", "pools.app.health.interval_s"),
    ],
)
def test_check_rejects_non_finite_and_huge_numbers(tmp_path: Path, text: str, key: str) -> None:
    done = check(tmp_path, text)
    assert done.returncode == 2, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"wsgate: {tmp_path / 'gw.toml'}: {key}: expected ")
    assert "Traceback" not in done.stderr


def test_check_still_accepts_a_sane_config(tmp_path: Path) -> None:
    done = check(tmp_path, f"[server]\nheader_timeout_s = 86400\n{POOL}connect_timeout_s = 2.5\n")
    assert done.returncode == 0, done
    assert ": ok: " in done.stdout


def test_check_rejects_a_listen_address_given_twice(tmp_path: Path) -> None:
    done = check(tmp_path, f'[server]\nlisten = ["127.0.0.1:8080", "127.0.0.1:8080"]\n{POOL}')
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [
        f"wsgate: {tmp_path / 'gw.toml'}: server.listen[1]: expected an address different from "
        "server.listen[0] (127.0.0.1:8080), got '127.0.0.1:8080'"
    ]
